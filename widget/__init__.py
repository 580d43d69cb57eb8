"""The customer live chat: website inboxes, their visitors and the widget's channel
(issue 14; docs/widget.md)."""

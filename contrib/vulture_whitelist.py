# ruff: noqa
"""Names that Django, DRF, drf-spectacular, RQ, Twisted and prometheus_client call or read
by convention, so vulture (contrib/test.sh lint step) never sees them used.

vulture matches by name: `_.list_display` whitelists every attribute called list_display.
Patterns (`*Config`, `*Middleware`, `clean_*`, ...) are in pyproject.toml [tool.vulture].
Only framework hooks belong here; dead code is removed, not whitelisted. A name that is
here only because a framework reads it from a string (settings, INSTALLED_APPS, a dotted
path) says which string.
"""

_ = object()

# --- Django: models and their Meta --------------------------------------------------------
_.abstract
_.constraints
_.indexes
_.ordering
_.verbose_name
_.verbose_name_plural
_.unique_together
_.get_latest_by
# model fields written and filtered only through the ORM's keyword arguments (create(),
# update(), filter(x=...)) or named in serializers' Meta.fields strings
_.is_available
_.key_hash
_.revoked_at
_.next_attempt_at
_.claim_token
_.sent_at
# read by DRF through the representation serializers' field names (chat/representations.py,
# escalation/representations.py, mailing/serializers.py), set by services and the admin
_.created_at
_.accepted_at
_.acknowledged_at
_.acknowledged_by
_.resolved_at
_.resolved_by
_.first_seen_at
_.fired_at
_.last_activity_at
_.last_message
_.order
# TextChoices members reached as database values (strings), not as attributes
_.CLOSED
_.FINISHED
_.OK
_.TRANSIENT
_.PERMANENT
_.IN_FLIGHT
_.LOST
_.ESCALATION
_.SEED
_.API

# --- Django: admin --------------------------------------------------------------------------
_.list_display
_.list_display_links
_.list_filter
_.list_select_related
_.list_editable
_.list_per_page
_.search_fields
_.readonly_fields
_.raw_id_fields
_.autocomplete_fields
_.fieldsets
_.inlines
_.max_num
_.can_delete
_.show_change_link
_.formset
_.actions
_.save_related
_.date_hierarchy
_.save_model
_.delete_model
_.delete_queryset
_.save_formset
_.get_actions
_.response_add
_.response_change
_.get_readonly_fields
_.get_queryset
_.get_form
_.get_fields
_.get_fieldsets
_.get_exclude
_.get_inlines
_.get_inline_instances
_.get_formset
_.get_formsets_with_inlines
_.get_list_display
_.get_list_filter
_.get_search_results
_.get_extra
_.get_max_num
_.get_min_num
_.get_urls
_.get_deleted_objects
_.get_changeform_initial_data
_.changelist_view
_.change_view
_.add_view
_.delete_view
# admin form fields (forms.Form class attributes read through the form's metaclass)
_.new_webhook_secret
_.clear_webhook_secret
# admin display columns named as strings in list_display / readonly_fields
_.stored_file
_.has_secret

# --- Django: apps, management commands, middleware, urls, ASGI, settings --------------------
_.ready
_.help
_.add_arguments
_.process_request
_.process_view
_.process_response
_.process_exception
_.urlpatterns
_.application  # ASGI_APPLICATION = "core.asgi.application"
_.streaming_content  # FileResponse/StreamingHttpResponse attribute set by the view
_.adding  # Model._state.adding, set after a bulk insert so save() updates
# settings Django, DRF, drf-spectacular and daphne read by name
_.CSRF_TRUSTED_ORIGINS
_.INSTALLED_APPS
_.MIDDLEWARE
_.ROOT_URLCONF
_.ASGI_APPLICATION
_.WSGI_APPLICATION
_.TEMPLATES
_.DEFAULT_AUTO_FIELD
_.MEDIA_ROOT
_.MEDIA_URL
_.FILE_UPLOAD_MAX_MEMORY_SIZE
_.DATA_UPLOAD_MAX_MEMORY_SIZE
_.STATIC_URL
_.STATIC_ROOT
_.STATICFILES_DIRS
_.LANGUAGE_CODE
_.TIME_ZONE
_.USE_I18N
_.USE_TZ
_.AUTH_PASSWORD_VALIDATORS
_.PASSWORD_HASHERS
_.LOGIN_URL
_.LOGIN_REDIRECT_URL
_.EMAIL_BACKEND
_.DEFAULT_FROM_EMAIL
_.REST_FRAMEWORK
_.SPECTACULAR_SETTINGS
_.LOGGING_CONFIG
_.SESSION_COOKIE_SECURE
_.CSRF_COOKIE_SECURE
_.SECURE_PROXY_SSL_HEADER
_.SECURE_SSL_REDIRECT
_.SECURE_HSTS_SECONDS
# the product's settings read by name: getattr(settings, "<NAME>") in core/throttles.py
# and chat/ws_auth.py; SENDER_JWT_SECRET by contrib/sender_simulator.py from .env
_.API_KEY_RATE
_.USER_RATE
_.ANON_RATE
_.TRIGGER_RATE
_.FILE_LINK_RATE
_.LOGIN_RATE
_.WS_CONNECT_RATE
_.WS_FRAME_RATE
_.SENDER_JWT_SECRET

# --- Duck-typed users (core/auth.py principals): read by Django's and DRF's permission checks
_.is_staff
_.is_superuser

# --- DRF and drf-spectacular ------------------------------------------------------------------
_.serializer_class
_.queryset
_.permission_classes
_.authentication_classes
_.throttle_classes
_.parser_classes
_.renderer_classes
_.pagination_class
_.filter_backends
_.lookup_field
_.lookup_url_kwarg
_.page_size
_.page_size_query_param
_.max_page_size
_.read_only_fields
_.extra_kwargs
_.default_error_messages
_.get_serializer
_.get_serializer_class
_.get_object
_.get_paginated_response
_.get_paginated_response_schema
_.get_ordering
_.validate
_.to_representation
_.to_internal_value
_.authenticate
_.authenticate_header
_.has_permission
_.has_object_permission
_.allow_request
_.put
_.patch
# DRF SerializerMethodField getters: get_<field> of a field declared on the serializer
_.get_file
_.get_has_secret
_.get_levels
_.get_members
_.get_rule
_.get_triggers
_.get_resolve_reason
_.get_steps
_.get_counts
_.get_role
# serializer fields named only in Meta.fields / the payload (alertmanager and trigger
# payloads keep their senders' spelling)
_.event
_.sending
_.first_sent_at
_.last_sent_at
_.duration_seconds
_.throughput_per_second
_.notifications
_.resolving
_.resolved_unmatched
_.annotations
_.startsAt
_.endsAt
_.receiver
_.groupKey
_.servico
_.retorno
_.gatilhos
# drf-spectacular: OpenApiAuthenticationExtension subclasses register themselves
_.target_class
_.get_security_definition
_.auto_schema
_.ApiKeyAuthenticationScheme
# classes named by dotted path in settings.REST_FRAMEWORK
_.ScopedAutoSchema
_.PrincipalRateThrottle

# --- Channels / daphne / Twisted ----------------------------------------------------------------
_.bytes_data  # AsyncWebsocketConsumer.receive(text_data=None, bytes_data=None)
_.websocket_disconnect  # Channels' dispatch calls the handler of 'websocket.disconnect' by name
_.channel_layer_alias
_.stopProducing  # Twisted IProducer

# --- RQ: methods and attributes core/workers.py overrides (pinned in requirements.txt) --------
_.prepare_registries
_._scheduled_job_registries
_._start_scheduler
_.max_connection_wait_time
_.next_enqueue_time

# --- prometheus_client ------------------------------------------------------------------------
_.collect  # custom collectors
_.describe
_.ValueClass  # core/metrics.py replaces prometheus_client.values.ValueClass (pinned)

# --- Python -----------------------------------------------------------------------------------
_.__qualname__

# --- test hooks: small public functions the tests inspect the platform through -----------
_.log_key  # core/events.py: the stream's key (tests read the log; operators clean it up)
_.event_log_open  # core/events.py: the synchronous twin of event_log_open_async
_.event_append  # core/events.py: events_append of one event; the websocket tests append with it
_.subscriber_count  # core/realtime.py: how many sockets a hub holds for an organization
_.rules_cache_clear  # escalation/rules.py: a rolled-back test transaction never bumps the token
_.admit  # chat/ws_auth.py: admit_async's one-by-one twin (same steps); the admission tests use it

# --- widget (issue 14): fields set through setattr by name or read by serializers' Meta ---------
_.OPTIONAL  # widget.models.WebInbox.Field: a pre-chat field's choice, stored, never compared
_.page_url
_.user_agent
_.utc_offset
_.get_verified  # widget/representations.py: DRF's SerializerMethodField calls get_<field>
_.verified

# --- email (issue 15): read by name -----------------------------------------------------------
_.WIDGET_VISITOR_RATE  # core.throttles.rate("WIDGET_...") reads the widget limits by name
_.WIDGET_IP_RATE
_.EMAIL_HOST  # Django's smtp EmailBackend reads the EMAIL_* settings by name
_.EMAIL_PORT
_.EMAIL_HOST_USER
_.EMAIL_HOST_PASSWORD
_.EMAIL_USE_TLS
_.EMAIL_USE_SSL
_.EMAIL_TIMEOUT
_.email_undeliverable  # chat.Client: read by mailing in values() and filters by name
_.no_address  # mailing.serializers.SkippedSerializer / ByTransportSerializer: DRF fields
_.undeliverable
_.by_transport
_.last_duplicate_at  # mailing.Event: written by an update() keyword, read by EventSerializer

# --- the console (issue 13): DRF fields and get_<field> methods read by name, model fields
# --- set through update()/setattr(), response serializers' fields (chat/console_serializers.py)
_.snoozed_until
_.read_at  # chat.HelpDeskRead: auto_now, shown in the admin and kept for audits
_.unread_count  # chat/representations.py: SerializerMethodField -> get_unread_count
_.get_unread_count
_.get_name  # UserRefSerializer / MemberSerializer: SerializerMethodField
_.get_client  # SearchMessageSerializer
_.last_message_text
_.message_status
_.rule_code
_.rule_name
_.warned_at
_.unassigned  # HelpDeskCountsSerializer (the OpenAPI schema of the counts)
_.notify_desktop  # core.AgentPreference: written through setattr by field name
_.notify_sound
_.time_zone  # core.AgentPreference and PreferenceSerializer's field
_.get_rule_name  # escalation/representations.py IncidentSerializer: rule_name

# --- the widget's public answers (widget/representations.py): response serializers that
# --- only describe hand-built answers in the OpenAPI schema (tests/widget/test_schema.py)
_.online
_.prechat
_.conversation

# --- the event log's key layout (core/events.py): named so tests and operators can read
# --- a sequence key without the module's private helpers (tests/core/test_cluster_eventlog.py)
_.seq_key

/* Messages by status over time: one step line per status, drawn as inline SVG
 * (role="img" with an aria-label; no library). */
import { t } from "../i18n.js";

export const STATUSES = ["pending", "sending", "sent", "failed", "expired"];
export const STATUS_NAMES = { pending: t("pending"), sending: t("sending"), sent: t("sent"), failed: t("failed"), expired: t("expired"), total: t("total") };
const COLORS = { pending: "#8a94a6", sending: "#0b5cad", sent: "#1e7a3c", failed: "#b3261e", expired: "#b86e00" };

function svg(tag, attrs, children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const key of Object.keys(attrs || {})) node.setAttribute(key, String(attrs[key]));
  for (const child of children || []) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}

export function drawChart(samples, label) {
  const width = 640, height = 240, left = 48, right = 110, top = 12, bottom = 32;
  const plotW = width - left - right, plotH = height - top - bottom;
  const t0 = samples.length ? samples[0].t : 0;
  const t1 = samples.length ? samples[samples.length - 1].t : 1;
  const span = Math.max(t1 - t0, 100);
  let max = 1;
  for (const sample of samples) for (const status of STATUSES) max = Math.max(max, sample.counts[status] || 0);
  const x = (time) => left + ((time - t0) / span) * plotW;
  const y = (v) => top + plotH - (v / max) * plotH;
  const nodes = [
    svg("title", {}, [label]),
    svg("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, stroke: "#5b6676" }),
    svg("line", { x1: left, y1: top, x2: left, y2: top + plotH, stroke: "#5b6676" }),
    svg("text", { x: left - 6, y: top + 4, "text-anchor": "end", "font-size": 11 }, [String(max)]),
    svg("text", { x: left - 6, y: top + plotH, "text-anchor": "end", "font-size": 11 }, ["0"]),
    svg("text", { x: left, y: height - 8, "font-size": 11 }, ["0 s"]),
    svg("text", { x: left + plotW, y: height - 8, "text-anchor": "end", "font-size": 11 }, [
      (span / 1000).toFixed(span < 1000 ? 2 : span < 10000 ? 1 : 0) + " s",
    ]),
  ];
  STATUSES.forEach((status, i) => {
    // A step line: a count holds until the next sample changes it.
    const coords = [];
    samples.forEach((sample, index) => {
      const value = y(sample.counts[status] || 0).toFixed(1);
      if (index > 0) coords.push(x(sample.t).toFixed(1) + "," + y(samples[index - 1].counts[status] || 0).toFixed(1));
      coords.push(x(sample.t).toFixed(1) + "," + value);
    });
    let points = coords.join(" ");
    if (samples.length === 1) points += " " + (left + plotW) + "," + y(samples[0].counts[status] || 0).toFixed(1);
    nodes.push(svg("polyline", { points, fill: "none", stroke: COLORS[status], "stroke-width": 2, "data-status": status }));
    const ly = top + 14 + i * 18;
    nodes.push(svg("rect", { x: left + plotW + 14, y: ly - 9, width: 10, height: 10, fill: COLORS[status] }));
    nodes.push(svg("text", { x: left + plotW + 30, y: ly, "font-size": 12 }, [STATUS_NAMES[status]]));
  });
  return svg("svg", { viewBox: "0 0 " + width + " " + height, width, height, role: "img", "aria-label": label }, nodes);
}

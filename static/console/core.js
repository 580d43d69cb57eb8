/* The console's shared state and its two plug-in points: websocket event handlers
 * (on(type, fn)) and loaders that run on start, on an organization change and on every
 * resync (addLoader(fn)). Modules talk through these, not through each other. */

export const config = JSON.parse(document.getElementById("console-config").textContent);

export const state = {
  orgs: [],
  org: null, // slug
  desks: new Map(), // uuid -> help desk object (every one the page knows)
  openDesk: null, // uuid of the open help desk
  applied: [], // event ids applied, for diagnostics (window.consoleDebug)
  timings: [], // ms each applied event took, for the rendering benchmark
};

const handlers = {}; // event type -> [function(data, frame)]
export function on(type, fn) {
  (handlers[type] = handlers[type] || []).push(fn);
}

export function applyEvent(frame, data) {
  const started = performance.now();
  state.applied.push(frame.id);
  if (state.applied.length > 50000) state.applied.splice(0, 10000);
  for (const fn of handlers[frame.type] || []) {
    try {
      fn(data, frame);
    } catch (e) {
      console.error("console: handler for " + frame.type + " failed", e);
    }
  }
  state.timings.push(performance.now() - started);
  if (state.timings.length > 50000) state.timings.splice(0, 10000);
}

export const loaders = []; // functions returning a promise
export function addLoader(fn) {
  loaders.push(fn);
}

// Local page events between modules (the open conversation changed, the view changed...).
const listeners = {};
export function listen(name, fn) {
  (listeners[name] = listeners[name] || []).push(fn);
}
export function emit(name, detail) {
  for (const fn of listeners[name] || []) fn(detail);
}

export function currentRole() {
  const org = state.orgs.find((o) => o.slug === state.org);
  return org ? org.role : null;
}

export function isAdmin() {
  const role = currentRole();
  return role === "admin" || role === "owner";
}

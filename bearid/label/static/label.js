// BearID label: one photo at a time, its face boxes and five landmarks drawn over it in SVG
// (coordinates are the photo's own pixels, as in the imglab XML). Every change goes to the
// server at once; undo and redo are changes too. No framework, no build step.

import * as matching from "/static/match.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const params = new URLSearchParams(location.search);

const state = {
  info: null,
  queue: params.get("queue") || "all",
  volunteer: "",
  image: null,        // the photo's JSON from the server
  boxes: [],          // its boxes as shown (saved or being saved)
  version: 0,         // the server's version those edits build on
  selected: null,     // index of the selected box
  armedPart: null,    // a landmark name to place with the next click
  drawMode: false,
  undo: new Map(),    // photo index -> stack of earlier box lists
  redo: new Map(),
  saving: Promise.resolve(),
  view: null,         // {x, y, w, h}: the part of the photo in view
  blind: false,       // several annotators per photo (bearid label --redundancy): this volunteer labels blind
};

const clone = (x) => JSON.parse(JSON.stringify(x));
const canvas = $("canvas");

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

async function api(path, options = {}) {
  const headers = {"Content-Type": "application/json"};
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;  // with accounts: every change carries the session's token
  const response = await fetch(path, {headers, ...options});
  if (response.status === 401) { location.href = "/login"; return {ok: false, status: 401, body: {error: "log in first"}}; }
  const body = await response.json().catch(() => ({}));
  return {ok: response.ok, status: response.status, body};
}

// -- coordinates and view ---------------------------------------------------------------
function toPhoto(event) {
  const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(canvas.getScreenCTM().inverse());
  return {x: p.x, y: p.y};
}

function pixelsPerUnit() {
  const ctm = canvas.getScreenCTM();
  return ctm ? ctm.a : 1;
}

function setView(view) {
  state.view = view;
  canvas.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  render();
}

function fit() {
  const {width, height} = state.image;
  setView({x: 0, y: 0, w: width, h: height});
}

function zoom(factor, centre) {
  const v = state.view;
  const c = centre || {x: v.x + v.w / 2, y: v.y + v.h / 2};
  const w = Math.min(Math.max(v.w * factor, 16), state.image.width * 4);
  const f = w / v.w;
  setView({x: c.x - (c.x - v.x) * f, y: c.y - (c.y - v.y) * f, w, h: v.h * f});
}

function zoomToFace() {
  const b = state.selected === null ? null : state.boxes[state.selected];
  if (!b) return fit();
  const side = Math.max(b.width, b.height) * 2.2;
  const aspect = canvas.clientWidth / Math.max(1, canvas.clientHeight);
  const [w, h] = aspect > 1 ? [side * aspect, side] : [side, side / aspect];
  setView({x: b.left + b.width / 2 - w / 2, y: b.top + b.height / 2 - h / 2, w, h});
}

// -- drawing ----------------------------------------------------------------------------
function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  parent.appendChild(node);
  return node;
}

function render() {
  const overlay = $("overlay");
  overlay.replaceChildren();
  if (!state.image) return;
  const unit = 1 / pixelsPerUnit();  // one screen pixel, in photo pixels
  state.boxes.forEach((b, i) => {
    const g = el("g", {"data-box": i}, overlay);
    const classes = ["box"];
    if (i === state.selected) classes.push("selected");
    if (b.ignore) classes.push("ignored");
    if (!b.label) classes.push("unlabelled");
    el("rect", {x: b.left, y: b.top, width: b.width, height: b.height, class: classes.join(" "),
                "data-role": "box", "data-box": i}, g);
    const tag = el("text", {x: b.left, y: b.top - 4 * unit, class: "tag", "font-size": 14 * unit, "stroke-width": 3 * unit}, g);
    tag.textContent = `${i + 1}: ${b.label || "no ID"}${b.ignore ? " (ignore)" : ""}`;
    for (const [name, [x, y]] of Object.entries(b.parts)) {
      const known = state.info.landmarks.includes(name) ? name : "other";
      el("circle", {cx: x, cy: y, r: 5 * unit, class: `part ${known}`, "data-role": "part", "data-box": i, "data-part": name}, g);
      if (i === state.selected) {
        const t = el("text", {x: x + 7 * unit, y: y + 4 * unit, class: "tag", "font-size": 11 * unit, "stroke-width": 2.5 * unit}, g);
        t.textContent = name;
      }
    }
    if (i === state.selected) {
      const corners = {nw: [b.left, b.top], ne: [b.left + b.width, b.top], sw: [b.left, b.top + b.height], se: [b.left + b.width, b.top + b.height]};
      for (const [corner, [x, y]] of Object.entries(corners)) {
        el("rect", {x: x - 5 * unit, y: y - 5 * unit, width: 10 * unit, height: 10 * unit, class: `corner ${corner}`,
                    "data-role": "corner", "data-box": i, "data-corner": corner}, g);
      }
    }
  });
  renderPanel();
}

function renderPanel() {
  const b = state.selected === null ? null : state.boxes[state.selected];
  $("face-number").textContent = b ? `${state.selected + 1} of ${state.boxes.length}` : `none selected (${state.boxes.length} on this photo)`;
  for (const id of ["label", "ignore", "delete"]) $(id).disabled = !b;
  $("split").disabled = !(b && b.label);
  if (document.activeElement !== $("label")) $("label").value = b ? (b.label || "") : "";
  $("ignore").checked = !!(b && b.ignore);
  const parts = $("parts");
  parts.replaceChildren();
  state.info.landmarks.forEach((name, n) => {
    const button = document.createElement("button");
    button.textContent = `${n + 1} ${name}`;
    button.disabled = !b;
    button.dataset.part = name;
    if (b && !(name in b.parts)) button.classList.add("missing");
    if (state.armedPart === name) button.classList.add("armed");
    button.title = `place ${name} with the next click (${n + 1})`;
    button.onclick = () => arm(name);
    parts.appendChild(button);
  });
  $("draw").classList.toggle("on", state.drawMode);
  canvas.classList.toggle("drawing", state.drawMode);
  canvas.classList.toggle("placing", !!state.armedPart);
  $("undo").disabled = !(state.undo.get(state.image.index) || []).length;
  $("redo").disabled = !(state.redo.get(state.image.index) || []).length;
}

// -- changes ----------------------------------------------------------------------------
function commit(boxes) {
  const i = state.image.index;
  if (JSON.stringify(boxes) === JSON.stringify(state.boxes)) return;
  if (!state.undo.has(i)) state.undo.set(i, []);
  state.undo.get(i).push(clone(state.boxes));
  state.redo.set(i, []);
  show(boxes);
}

function show(boxes) {
  state.boxes = boxes;
  if (state.selected !== null && state.selected >= boxes.length) state.selected = boxes.length ? boxes.length - 1 : null;
  render();
  save(state.image.index, clone(boxes));
}

function save(index, boxes) {
  if (state.blind) {  // an answer is sent whole, when the annotator moves on
    status(`Your answer so far: ${boxes.length} face(s). Press → (Next) to send it and get the next photo.`);
    return state.saving;
  }
  status("saving...");
  state.saving = state.saving.then(async () => {
    if (!state.image || state.image.index !== index) return;
    const {ok, status: code, body} = await api(`/api/images/${index}`, {
      method: "PUT", body: JSON.stringify({boxes, version: state.version, volunteer: state.volunteer})});
    if (ok) {
      state.version = body.version;
      status(`saved (version ${body.version})`);
      document.body.dataset.saved = `${index}:${body.version}`;
    } else if (code === 409) {
      state.undo.delete(index);
      state.redo.delete(index);
      await load(index);
      status("This photo was changed in another tab or by another volunteer: it has been reloaded, please redo your change.", true);
    } else {
      await load(index);
      status(`Not saved: ${body.error || code}`, true);
    }
  });
  return state.saving;
}

function undo() {
  const i = state.image.index;
  const stack = state.undo.get(i) || [];
  if (!stack.length) return;
  if (!state.redo.has(i)) state.redo.set(i, []);
  state.redo.get(i).push(clone(state.boxes));
  show(stack.pop());
}

function redo() {
  const i = state.image.index;
  const stack = state.redo.get(i) || [];
  if (!stack.length) return;
  state.undo.get(i).push(clone(state.boxes));
  show(stack.pop());
}

function editSelected(change) {
  if (state.selected === null) return;
  const boxes = clone(state.boxes);
  change(boxes[state.selected]);
  commit(boxes);
}

function deleteSelected() {
  if (state.selected === null) return;
  const boxes = clone(state.boxes);
  boxes.splice(state.selected, 1);
  state.selected = boxes.length ? Math.min(state.selected, boxes.length - 1) : null;
  commit(boxes);
}

function arm(name) {
  if (state.selected === null) return status("Select a face first, then place its landmarks.", true);
  state.armedPart = state.armedPart === name ? null : name;
  state.drawMode = false;
  renderPanel();
  if (state.armedPart) status(`Click on the photo to place ${name} of face ${state.selected + 1}.`);
}

// -- pointer ----------------------------------------------------------------------------
let drag = null;

canvas.addEventListener("pointerdown", (event) => {
  if (!state.image || event.button > 1) return;
  const p = toPhoto(event);
  const t = event.target;
  const role = t.dataset ? t.dataset.role : undefined;
  canvas.setPointerCapture(event.pointerId);
  if (state.armedPart && state.selected !== null && event.button === 0) {
    const name = state.armedPart;
    state.armedPart = null;
    editSelected((b) => { b.parts[name] = [Math.round(p.x), Math.round(p.y)]; });
    status(`Placed ${name}.`);
    return;
  }
  if (role && event.button === 0 && !event.shiftKey && !state.drawMode) {
    const i = Number(t.dataset.box);
    state.selected = i;
    drag = {kind: role, box: i, corner: t.dataset.corner, part: t.dataset.part, start: p, original: clone(state.boxes), moved: false};
    render();
    return;
  }
  if ((event.shiftKey || state.drawMode) && event.button === 0) {
    drag = {kind: "draw", start: p, moved: false};
    return;
  }
  drag = {kind: "pan", start: {x: event.clientX, y: event.clientY}, view: {...state.view}, moved: false};
});

canvas.addEventListener("pointermove", (event) => {
  if (!drag) return;
  drag.moved = true;
  if (drag.kind === "pan") {
    const s = pixelsPerUnit();
    setView({...drag.view, x: drag.view.x - (event.clientX - drag.start.x) / s, y: drag.view.y - (event.clientY - drag.start.y) / s});
    return;
  }
  const p = toPhoto(event);
  if (drag.kind === "draw") {
    const r = $("rubber");
    r.setAttribute("x", Math.min(p.x, drag.start.x));
    r.setAttribute("y", Math.min(p.y, drag.start.y));
    r.setAttribute("width", Math.abs(p.x - drag.start.x));
    r.setAttribute("height", Math.abs(p.y - drag.start.y));
    r.setAttribute("visibility", "visible");
    return;
  }
  const dx = Math.round(p.x - drag.start.x), dy = Math.round(p.y - drag.start.y);
  const boxes = clone(drag.original);
  const b = boxes[drag.box];
  if (drag.kind === "box") {
    b.left += dx; b.top += dy;
  } else if (drag.kind === "part") {
    b.parts[drag.part] = [b.parts[drag.part][0] + dx, b.parts[drag.part][1] + dy];
  } else if (drag.kind === "corner") {
    let [l, t, r, btm] = [b.left, b.top, b.left + b.width, b.top + b.height];
    if (drag.corner.includes("w")) l += dx; else r += dx;
    if (drag.corner.includes("n")) t += dy; else btm += dy;
    [b.left, b.top, b.width, b.height] = [Math.min(l, r), Math.min(t, btm), Math.max(1, Math.abs(r - l)), Math.max(1, Math.abs(btm - t))];
  }
  state.boxes = boxes;
  render();
});

canvas.addEventListener("pointerup", (event) => {
  if (!drag) return;
  const d = drag;
  drag = null;
  if (d.kind === "pan") {
    if (!d.moved) { state.selected = null; state.armedPart = null; render(); }
    return;
  }
  if (d.kind === "draw") {
    $("rubber").setAttribute("visibility", "hidden");
    const p = toPhoto(event);
    const [left, top] = [Math.round(Math.min(p.x, d.start.x)), Math.round(Math.min(p.y, d.start.y))];
    const [width, height] = [Math.round(Math.abs(p.x - d.start.x)), Math.round(Math.abs(p.y - d.start.y))];
    state.drawMode = false;
    if (width < 4 || height < 4) { render(); return status("Too small for a face: drag further to draw a box."); }
    const boxes = clone(state.boxes);
    boxes.push({left, top, width, height, label: state.image.suggested_label, parts: {}, ignore: false,
                difficult: false, truncated: false, occluded: false, attrs: {}});
    state.selected = boxes.length - 1;
    commit(boxes);
    return status(`New face ${boxes.length}: set its bear ID and place its landmarks (1-5).`);
  }
  const moved = state.boxes;
  state.boxes = d.original;  // commit() records the state before the drag for undo
  commit(moved);
});

canvas.addEventListener("wheel", (event) => {
  if (!state.image) return;
  event.preventDefault();
  zoom(event.deltaY > 0 ? 1.25 : 0.8, toPhoto(event));
}, {passive: false});

// -- panel and keys ---------------------------------------------------------------------
$("label").addEventListener("change", () => {
  const value = $("label").value.trim() || null;
  editSelected((b) => { b.label = value; });
});
$("label").addEventListener("keydown", (event) => {
  if (event.key === "Enter") { event.preventDefault(); $("label").blur(); }
  if (event.key === "Escape") { $("label").value = state.boxes[state.selected]?.label || ""; $("label").blur(); }
});
$("ignore").addEventListener("change", () => editSelected((b) => { b.ignore = $("ignore").checked; }));
$("delete").onclick = deleteSelected;
$("undo").onclick = undo;
$("redo").onclick = redo;
$("fit").onclick = fit;
$("zoom-face").onclick = zoomToFace;
$("draw").onclick = () => { state.drawMode = !state.drawMode; state.armedPart = null; renderPanel(); };
$("next").onclick = () => go(1);
$("prev").onclick = () => go(-1);
$("queue").onchange = () => { state.queue = $("queue").value; go(1, true); };
$("logout").onclick = async () => { await fetch("/logout", {method: "POST", headers: {"X-CSRF-Token": state.csrf}}); location.href = "/login"; };
$("volunteer").onchange = () => {
  const name = $("volunteer").value.trim();
  if (name) { state.volunteer = name; localStorage.setItem("bearid-volunteer", name); }
};

document.addEventListener("keydown", (event) => {
  if (state.queue === "match") { if (matching.keys(event)) event.preventDefault(); else if (event.key === "ArrowRight") go(1); return; }
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement || !state.image) return;
  const ctrl = event.ctrlKey || event.metaKey;
  const key = event.key;
  if (ctrl && key.toLowerCase() === "z") { event.preventDefault(); return event.shiftKey ? redo() : undo(); }
  if (ctrl && key.toLowerCase() === "y") { event.preventDefault(); return redo(); }
  if (ctrl) return;
  if (key === "ArrowRight" || key === "ArrowDown") { event.preventDefault(); return go(1); }
  if (key === "ArrowLeft" || key === "ArrowUp") { event.preventDefault(); return go(-1); }
  if (key === "Delete" || key === "Backspace") { event.preventDefault(); return deleteSelected(); }
  if (key === "Escape") { state.armedPart = null; state.drawMode = false; state.selected = null; return render(); }
  if (key === "Tab") {
    event.preventDefault();
    if (state.boxes.length) state.selected = state.selected === null ? 0 : (state.selected + (event.shiftKey ? state.boxes.length - 1 : 1)) % state.boxes.length;
    return render();
  }
  if (key === "b" || key === "B") { state.drawMode = !state.drawMode; state.armedPart = null; return renderPanel(); }
  if (key === "i" || key === "I") return editSelected((b) => { b.ignore = !b.ignore; });
  if (key === "l" || key === "L") { event.preventDefault(); return $("label").focus(); }
  if (key === "+" || key === "=") return zoom(0.8);
  if (key === "-") return zoom(1.25);
  if (key === "0") return fit();
  if (key === "z" || key === "Z") return zoomToFace();
  const n = Number(key);
  if (n >= 1 && n <= state.info.landmarks.length) return arm(state.info.landmarks[n - 1]);
});

// -- a curator's merge and split (the server refuses them to volunteers) ------------------
async function curatorOp(path, body, said) {
  await state.saving;
  const {ok, body: op} = await api(path, {method: "POST", body: JSON.stringify({...body, volunteer: state.volunteer})});
  if (!ok) return status(op.error || "not done", true);
  state.lastOp = op.id;
  $("undo-op").hidden = op.kind === "undo";
  status(`${said(op)}: ${op.faces} face(s) on ${op.photos} photo(s). Operation ${op.id}.`);
  document.body.dataset.op = op.id;
  await refreshQueues();
  await load(state.image.index);
}

$("split").onclick = () => curatorOp("/api/bears/split", {faces: [[state.image.index, state.selected]]}, (op) => `split off ${op.new} from ${op.from}`);
$("merge").onclick = () => {
  const gone = $("merge-gone").value.trim(), keep = $("merge-keep").value.trim();
  if (!gone || !keep) return status("give both bear IDs to merge", true);
  curatorOp("/api/bears/merge", {keep, gone}, (op) => `merged ${op.gone} into ${op.keep}`);
};
$("undo-op").onclick = () => curatorOp("/api/bears/undo", {op: state.lastOp}, (op) => `undid ${op.of}`);

// -- photos -----------------------------------------------------------------------------
async function load(index) {
  const matchView = state.queue === "match";
  $("match").hidden = !matchView;
  $("stage").hidden = matchView;
  document.querySelector("aside").classList.toggle("matching", matchView);  // the status stays in view
  if (matchView) {
    state.image = {index};
    $("photo-name").textContent = `#${index + 1} of ${state.info.photos}`;
    return matching.show(index, {api, status, volunteer: () => state.volunteer, curator: state.role === "curator", go});
  }
  const {ok, body} = state.blind ? await blindTask(index) : await api(`/api/images/${index}?volunteer=${encodeURIComponent(state.volunteer)}`);
  if (!ok) return status(body.error || "could not load the photo", true);
  const fresh = !state.image || state.image.index !== index;
  state.image = body;
  state.boxes = body.boxes;
  state.version = body.version;
  if (fresh) { state.selected = body.boxes.length ? 0 : null; state.armedPart = null; }
  if (state.selected !== null && state.selected >= state.boxes.length) state.selected = null;
  $("photo-name").textContent = `#${index + 1} of ${state.info.photos}: ${body.file}`;
  const reasons = Object.entries(body.reasons).map(([q, r]) => `${q}: ${r}`);
  if (body.last_change) reasons.push(`last changed by ${body.last_change.volunteer} at ${body.last_change.time}`);
  if (body.holder && body.holder !== state.volunteer) reasons.push(`${body.holder} has this photo open too: saves are checked against theirs.`);
  $("reasons").textContent = reasons.join("\n");
  const url = new URL(location);
  url.searchParams.set("image", index);
  history.replaceState(null, "", url);
  if (fresh) {
    const photo = $("photo");
    await new Promise((resolve) => {
      photo.onload = resolve;
      photo.onerror = () => { status(`photo ${body.file} could not be shown`, true); resolve(); };
      photo.setAttribute("width", body.width);
      photo.setAttribute("height", body.height);
      photo.setAttribute("href", `/api/images/${index}/photo`);
    });
    fit();
  } else {
    render();
  }
  document.body.dataset.ready = String(index);
}

// Blind labelling: the task is the photo alone (no faces: not the others' answers, not gold).
async function blindTask(index) {
  const {ok, body} = await api(`/api/blind/${index}`);
  if (!ok) return {ok, body};
  return {ok, body: {...body, file: "", boxes: [], version: 0, reasons: {}, last_change: null, holder: null}};
}

async function blindGo(restart) {
  if (!restart && state.image) {
    const sent = await api(`/api/blind/${state.image.index}`, {method: "POST", body: JSON.stringify({boxes: state.boxes})});
    if (!sent.ok) return status(sent.body.error || "your answer was not taken", true);
    document.body.dataset.answered = String((Number(document.body.dataset.answered) || 0) + 1);
  }
  const {ok, body} = await api("/api/blind/next");
  if (!ok) return status(body.error, true);
  if (body.index === null) { state.image = null; render(); return status("Nothing left for you to label. Thank you!"); }
  state.image = null;  // a fresh photo, even if it is the same one again
  await load(body.index);
  status("Draw every bear face (Shift+drag or B), place its five landmarks (1-5) and give its ID; → sends it.");
}

async function go(step, restart = false) {
  await state.saving;
  if (state.blind) return step > 0 ? blindGo(restart) : undefined;
  const after = restart || !state.image ? "" : state.image.index;
  if (step > 0 && after !== "") {  // moving on: this photo is reviewed in this queue (a change, so a POST)
    const done = await api("/api/review", {method: "POST", body: JSON.stringify({index: after, queue: state.queue, volunteer: state.volunteer})});
    if (!done.ok) return status(done.body.error, true);
  }
  const {ok, body} = await api(`/api/next?queue=${state.queue}&volunteer=${encodeURIComponent(state.volunteer)}&after=${after}&step=${step}`);
  if (!ok) return status(body.error, true);
  await refreshQueues();
  if (body.index === null) return status(`Nothing left in the "${state.queue}" queue for you. Pick another queue.`);
  await load(body.index);
}

async function refreshQueues() {
  const {body} = await api("/api/info");
  state.info = body;
  const select = $("queue");
  select.replaceChildren(...body.queues.map((q) => {
    const option = document.createElement("option");
    option.value = q.name;
    option.textContent = `${q.name} (${q.todo} to do of ${q.total})`;
    option.title = q.description;
    return option;
  }));
  select.value = state.queue;
  $("ids").replaceChildren(...body.ids.map((id) => Object.assign(document.createElement("option"), {value: id})));
}

async function start() {
  const me = (await api("/api/me")).body;
  state.csrf = me.csrf;
  state.role = me.role;
  if (me.accounts) {  // logged in: the account's name is what the journal records
    state.volunteer = me.name;
    $("volunteer").value = `${me.name} (${me.role})`;
    $("volunteer").readOnly = true;
    $("logout").hidden = false;
    $("curator").hidden = me.role !== "curator";
  } else {
    $("curator").hidden = false;  // no accounts: a trusted network, everyone may
    state.volunteer = params.get("volunteer") || localStorage.getItem("bearid-volunteer") || "";
    while (!state.volunteer) state.volunteer = (prompt("Your name (it is recorded with your changes):") || "").trim();
    localStorage.setItem("bearid-volunteer", state.volunteer);
    $("volunteer").value = state.volunteer;
  }
  await refreshQueues();
  state.blind = state.info.redundancy > 1 && me.accounts && me.role !== "curator";
  document.body.dataset.blind = String(state.blind);
  $("queue").disabled = state.blind;
  if (state.blind) return go(1, true);
  if (state.info.recovered) status(`${state.info.recovered} change(s) saved in the journal before a crash were restored.`);
  if (params.has("image")) await load(Number(params.get("image")));
  else await go(1, true);
}

window.addEventListener("resize", () => render());
start();

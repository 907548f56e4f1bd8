// BearID label, the match review: one face the model could not name (or named unsure), big,
// beside the bears it could be, each with reference chips of that bear from different dates.
// Decisions: 1-5 "this is that bear", N "a new bear" (the site's next free ID), X "not a bear",
// U "can't tell". Each is saved at once and journalled with who decided, on which candidates.

const $ = (id) => document.getElementById(id);

const match = {page: null, face: 0, ctx: null};

function node(tag, attrs = {}, ...children) {
  const n = Object.assign(document.createElement(tag), attrs);
  n.append(...children);
  return n;
}

function card(bear, key) {
  const refs = bear.references.map((r) => node("figure", {},
    node("img", {src: r.chip, alt: `${bear.bear_id} ${r.date || ""}`}), node("figcaption", {textContent: r.date || "no date"})));
  const head = node("div", {className: "card-head"},
    node("kbd", {textContent: key}), node("strong", {textContent: bear.bear_id}),
    node("span", {className: "name", textContent: bear.name || ""}),
    node("span", {className: "seen", textContent: bear.seen ? `${bear.seen.photos} photos, ${bear.seen.first_seen || "?"} to ${bear.seen.last_seen || "?"}` : ""}),
    node("span", {className: "score", textContent: bear.score === null ? "" : `${Math.round(100 * bear.score)}%`}));
  const button = node("button", {className: "card", title: `this is ${bear.bear_id} (${key})`}, head, node("div", {className: "refs"}, ...refs));
  button.dataset.bear = bear.bear_id;
  button.onclick = () => decide("same", bear.bear_id);
  return button;
}

function render() {
  const page = match.page;
  const face = page.faces[match.face];
  $("match-chip").src = face.chip;
  $("match-reason").textContent = `face ${face.face + 1}: ${face.reason}` + (face.source ? ` — candidates from ${face.source}` : " — no candidates: type a bear ID");
  $("match-candidates").replaceChildren(...face.candidates.slice(0, 5).map((bear, n) => card(bear, String(n + 1))));
  $("match-new").textContent = `N  A new bear: ${page.new_id}`;
  $("match-other").value = "";
  document.body.dataset.matchReady = `${page.index}:${face.face}`;
}

async function decide(decision, bearId = null) {
  const {api, status, volunteer, go} = match.ctx;
  const page = match.page;
  const face = page.faces[match.face];
  const body = {face: face.face, decision, version: page.version, volunteer: volunteer()};
  if (bearId) body.bear_id = bearId;
  if (decision === "new") body.name = $("match-name").value.trim() || null;
  const {ok, status: code, body: answer} = await api(`/api/match/${page.index}`, {method: "POST", body: JSON.stringify(body)});
  if (!ok) {
    status(answer.error || "the decision was not saved", true);
    if (code === 409) await show(page.index, match.ctx);  // changed elsewhere: look again
    return;
  }
  const said = {same: `face ${face.face + 1} is ${answer.bear_id}`, new: `face ${face.face + 1} is a new bear, ${answer.bear_id}`,
    not_bear: `face ${face.face + 1} is not a bear`, unsure: `face ${face.face + 1}: can't tell (it stays in the queue)`}[decision];
  status(`Saved: ${said}.`);
  $("match-name").value = "";
  match.page = answer.match;
  const next = match.page.faces.findIndex((f) => f.face > face.face);
  if (next >= 0) { match.face = next; return render(); }
  return go(1);
}

export async function show(index, ctx) {
  match.ctx = ctx;
  const {ok, body} = await ctx.api(`/api/match/${index}`);
  if (!ok) return ctx.status(body.error || "could not load the match", true);
  match.page = body;
  match.face = 0;
  $("match-new").hidden = $("match-name").hidden = !ctx.curator;  // naming a new bear is a curator's
  if (!body.faces.length) return ctx.go(1);
  render();
}

export function keys(event) {
  if (!match.page || event.target instanceof HTMLInputElement) return false;
  const key = event.key.toLowerCase();
  const face = match.page.faces[match.face];
  const n = Number(key);
  if (n >= 1 && n <= Math.min(5, face.candidates.length)) { decide("same", face.candidates[n - 1].bear_id); return true; }
  if (key === "n") { decide("new"); return true; }
  if (key === "x") { decide("not_bear"); return true; }
  if (key === "u") { decide("unsure"); return true; }
  return false;
}

$("match-new").onclick = () => decide("new");
$("match-not").onclick = () => decide("not_bear");
$("match-unsure").onclick = () => decide("unsure");
$("match-other").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && $("match-other").value.trim()) { event.preventDefault(); decide("same", $("match-other").value.trim()); }
});

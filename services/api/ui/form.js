// The job form, for a new job (POST /v1/jobs) or an existing one (PUT /v1/jobs/{name}). The
// server validates; its message (Dkron's plain text) is shown as it comes. The schedule is read
// back as it is typed (GET /v1/schedule): in words, with its next times, or the parser's error.

import { api, enc, go, h, notice } from "/ui/lib.js";

const TEXT = [
  ["name", "Name", "lower case letters, digits, _ and -"], ["displayname", "Display name", ""],
  ["schedule", "Schedule", "@every 10s, 0 30 * * * *, @daily, @manually…"], ["timezone", "Time zone", "Europe/Berlin"],
  ["executor", "Executor", "shell"], ["parent_job", "Parent job", "runs after this job succeeds"],
  ["retry_interval", "Retry interval", "1s"], ["timeout", "Timeout", "10m"], ["jitter", "Jitter", "5s"],
  ["catchup_window", "Catch-up window", "1h"], ["owner", "Owner", ""], ["owner_email", "Owner email", ""],
  ["starts_at", "Starts at", "2030-01-01T00:00:00Z"], ["expires_at", "Expires at", ""],
];
const NUMBERS = [["retries", "Retries", 0], ["history_limit", "History kept", 100]];
const CHOICES = [["concurrency", "Concurrency", ["allow", "forbid", "replace"]],
  ["misfire_policy", "Missed ticks", ["run_once", "skip", "run_all"]]];
const MAPS = [["executor_config", "Executor config (JSON)", { command: "echo hello" }], ["tags", "Target tags (JSON)", {}],
  ["metadata", "Metadata (JSON)", {}], ["processors", "Processors (JSON)", {}]];
const FLAGS = [["disabled", "Disabled"], ["ephemeral", "Ephemeral (delete after its first success)"]];
const PREVIEW_COUNT = 5;
const PREVIEW_DELAY_MS = 250; // typing pauses this long before the schedule is read back

export function jobForm(view, name) {
  const error = h("div", { id: "form-error", class: "error", role: "alert", hidden: true });
  const fields = {};
  const input = (key, attrs) => (fields[key] = h("input", { name: key, id: `f-${key}`, ...attrs }));
  const preview = h("div", { id: "schedule-preview", class: "wide preview", "aria-live": "polite" });
  const form = h("form", { class: "job", id: "job-form", novalidate: true },
    TEXT.map(([key, label, hint]) => [
      h("label", {}, label, input(key, { placeholder: hint, readonly: key === "name" && name })),
      key === "timezone" ? preview : null]),
    NUMBERS.map(([key, label, value]) => h("label", {}, label, input(key, { type: "number", min: 0, value }))),
    CHOICES.map(([key, label, options]) => h("label", {}, label,
      (fields[key] = h("select", { name: key, id: `f-${key}` }, options.map((o) => h("option", { value: o }, o)))))),
    MAPS.map(([key, label, value]) => h("label", { class: "wide" }, label,
      (fields[key] = h("textarea", { name: key, id: `f-${key}`, spellcheck: "false" }, JSON.stringify(value, null, 2))))),
    FLAGS.map(([key, label]) => h("label", { class: "check" }, input(key, { type: "checkbox" }), label)),
    h("div", { class: "wide actions" },
      h("button", { class: "primary", id: "save", type: "submit" }, name ? "Save job" : "Create job"),
      h("button", { type: "button", onclick: () => history.back() }, "Cancel")));
  view.append(h("h1", {}, name ? `Edit ${name}` : "New job"), error, form);
  fields.executor.value = "shell";

  let stopped = false;
  let asked = 0;
  let timer = null;
  // The newest answer wins: one that arrives after a later question is dropped.
  const readBack = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++asked;
      const text = fields.schedule.value.trim();
      if (!text) return preview.replaceChildren(h("span", { class: "muted" }, "Type a schedule to see when it runs."));
      const query = new URLSearchParams({ schedule: text, count: String(PREVIEW_COUNT) });
      for (const key of ["timezone", "name"]) if (fields[key].value.trim()) query.set(key, fields[key].value.trim());
      let shown;
      try {
        shown = readable((await api("GET", `/schedule?${query}`)).data);
      } catch (err) {
        shown = [h("div", { class: "error", id: "schedule-error", role: "alert" }, err.message)];
      }
      if (mine === asked && !stopped) preview.replaceChildren(...shown);
    }, PREVIEW_DELAY_MS);
  };
  for (const key of ["schedule", "timezone", "name"]) fields[key].addEventListener("input", readBack);
  readBack();
  if (name) {
    api("GET", `/jobs/${enc(name)}`).then(({ data }) => {
      if (stopped) return;
      fill(fields, data);
      readBack();
    }).catch((err) => notice(`Cannot load ${name}: ${err.message}`));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    let doc;
    try {
      doc = read(fields);
    } catch (err) {
      return show(error, err.message);
    }
    try {
      const saved = name ? await api("PUT", `/jobs/${enc(name)}`, doc) : await api("POST", "/jobs", doc);
      notice(`Saved ${saved.data.name}.`);
      go(`#/jobs/${enc(saved.data.name)}`);
    } catch (err) {
      show(error, err.message);
    }
  });
  return { stop() { stopped = true; clearTimeout(timer); } };
}

// A schedule preview: its words, the rule it keeps on the nights the clock changes, its next times.
function readable(doc) {
  const times = doc.next.map((t) => h("li", {}, h("time", { datetime: t.at, title: `${t.at} (UTC)` },
    `${t.local.slice(0, 19).replace("T", " ")} ${t.zone}`)));
  return [
    h("p", { id: "schedule-words" }, doc.description),
    doc.daylight_saving ? h("p", { class: "muted", id: "schedule-dst" }, doc.daylight_saving) : null,
    times.length ? h("ol", { id: "schedule-next" }, times) : h("p", { class: "muted" }, "No fire times to come."),
  ].filter(Boolean);
}

function show(box, message) {
  box.textContent = message;
  box.hidden = false;
}

function fill(fields, job) {
  for (const [key] of TEXT) fields[key].value = job[key] ?? "";
  for (const [key] of NUMBERS) fields[key].value = job[key] ?? 0;
  for (const [key] of CHOICES) fields[key].value = job[key] || fields[key].options[0].value;
  for (const [key] of MAPS) fields[key].value = JSON.stringify(job[key] || {}, null, 2);
  for (const [key] of FLAGS) fields[key].checked = Boolean(job[key]);
}

// The form as a job document; a JSON field that does not parse is named (the server never sees it).
function read(fields) {
  const doc = {};
  for (const [key] of TEXT) {
    const value = fields[key].value.trim();
    if (value || key === "name" || key === "schedule") doc[key] = value;
  }
  for (const [key] of NUMBERS) doc[key] = Number(fields[key].value || 0);
  for (const [key] of CHOICES) doc[key] = fields[key].value;
  for (const [key, label] of MAPS) {
    const text = fields[key].value.trim();
    try {
      doc[key] = text ? JSON.parse(text) : {};
    } catch (err) {
      throw new Error(`${label}: not valid JSON (${err.message})`);
    }
  }
  for (const [key] of FLAGS) doc[key] = fields[key].checked;
  return doc;
}

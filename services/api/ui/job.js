// The job page: definition, actions (run now, toggle, edit, clear history, delete), the live
// output of a running execution (with kill), a chart of recent runs, and the executions with
// their outputs.

import {
  api, badge, can, defaultZone, duration, enc, follow, go, h, inZone, jobPath, jobZone, lateness, millis, notice, poller,
  running, seconds, svg, ZERO_TIME,
} from "/ui/lib.js";

const CHART_RUNS = 30;
const OUTPUT_LIMIT = 4000; // bytes of each output the list brings; "Load full output" fetches the rest

export function jobPage(view, name) {
  const status = h("span", { id: "job-status" });
  const actions = h("div", { class: "actions", id: "job-actions" });
  const live = h("div", { id: "live", class: "live" }, h("span", { class: "muted" }, "Nothing is running."));
  const chart = h("div", { id: "chart", class: "chart" });
  const executions = h("div", { id: "executions" });
  const definition = h("div", { id: "definition" });
  const zoneNote = h("p", { id: "job-zone", class: "muted" });
  view.append(h("h1", {}, h("span", { id: "job-name" }, name), status), zoneNote, actions,
    h("h2", {}, "Live output"), live, h("h2", {}, "Recent runs"), chart,
    h("h2", {}, "Executions"), executions, h("h2", {}, "Definition"), definition);
  const state = { job: null, zone: "UTC", open: new Set(), full: new Map(), following: null,
    abort: new AbortController() };
  const path = `/jobs/${enc(name)}`;

  const act = (label, fn) => async () => {
    try {
      await fn();
    } catch (err) {
      notice(err.status === 403 ? `${label}: not allowed with this token: ${err.message}` : `${label}: ${err.message}`);
    }
  };
  // The actions the token has the right for (the API refuses the others with 403 anyway).
  const may = (capability) => can(jobPath(name), capability);
  const refresh = async () => {
    const [job, list, fallback] = await Promise.all([
      api("GET", path), api("GET", `${path}/executions?output_size_limit=${OUTPUT_LIMIT}`), defaultZone()]);
    state.job = job.data;
    state.zone = jobZone(job.data, fallback);
    zoneNote.textContent = `Times in ${state.zone} (UTC on hover)`;
    const busy = list.data.filter(running);
    status.replaceChildren(badge(busy.length ? "running" : job.data.status));
    if (!actions.childElementCount) actions.append(...buttons().filter(Boolean));
    const toggle = document.getElementById("toggle");
    if (toggle) toggle.textContent = job.data.disabled ? "Enable" : "Disable";
    definition.replaceChildren(describe(job.data, state.zone));
    chart.replaceChildren(drawChart(list.data.slice(0, CHART_RUNS).reverse()));
    executions.replaceChildren(executionTable(list.data));
    const newest = busy.find((x) => x.status === "running") || busy[0];
    if (newest && (!state.following || state.following.done) && state.following?.id !== newest.id) watch(newest);
  };
  const poll = poller(refresh);

  function buttons() {
    const update = may("update");
    return [
      update && h("button", { id: "run", class: "primary", onclick: act("Run", async () => {
        await api("POST", path);
        notice(`Started ${name}.`);
        await refresh();
      }) }, "Run now"),
      update && h("button", { id: "toggle", onclick: act("Toggle", async () => {
        await api("POST", `${path}/toggle`);
        await refresh();
      }) }, "Disable"),
      update && h("button", { id: "edit", onclick: () => go(`#/jobs/${enc(name)}/edit`) }, "Edit"),
      can(`${jobPath(name)}/executions`, "delete") && h("button", { id: "clear", onclick: act("Clear history", async () => {
        if (!window.confirm(`Delete every execution of ${name} and reset its counters?`)) return;
        await api("DELETE", `${path}/executions`);
        state.open.clear();
        await refresh();
      }) }, "Clear history"),
      may("delete") && h("button", { id: "delete", class: "danger", onclick: act("Delete", async () => {
        if (!window.confirm(`Delete job ${name}?`)) return;
        await poll.stop();
        state.abort.abort();
        await api("DELETE", path);
        notice(`Deleted ${name}.`);
        go("#/");
      }) }, "Delete"),
    ];
  }

  function kill(execution) {
    return act("Kill", async () => {
      await api("POST", `${path}/executions/${enc(execution.id)}/kill`);
      notice(`Killing ${execution.id}…`);
    });
  }

  // Streams one execution's output into the live panel until it ends (or the page is left).
  function watch(execution) {
    const out = h("pre", { class: "output", id: "live-output" });
    const ended = h("span", { id: "live-status" }, badge("running"));
    state.following = { id: execution.id, done: false };
    const mine = state.following;
    live.replaceChildren(
      h("div", { class: "actions" }, h("b", {}, `Execution ${execution.id} on ${execution.node_name}`), ended,
        may("update") ? h("button", { id: "kill", class: "danger", onclick: kill(execution) }, "Kill") : null),
      out);
    follow(name, execution.id, {
      signal: state.abort.signal,
      onText: (text) => {
        out.textContent += text;
        out.scrollTop = out.scrollHeight;
      },
      onEnd: (final) => {
        mine.done = true;
        ended.replaceChildren(badge(final.status));
        document.getElementById("kill")?.remove();
      },
    });
  }

  function executionTable(list) {
    if (!list.length) return h("p", { class: "muted" }, "No executions yet.");
    const rows = [h("tr", {}, ["Execution", "Node", "Status", "Scheduled", "Started", "Late", "Jitter", "Finished", "Took",
      "Exit", "Attempt", ""].map((c) => h("th", {}, c)))];
    for (const x of list) {
      const open = state.open.has(x.id);
      const toggle = () => {
        if (open) state.open.delete(x.id);
        else state.open.add(x.id);
        executions.replaceChildren(executionTable(list));
      };
      rows.push(h("tr", { "data-execution": x.id, "data-status": x.status },
        h("td", { class: "mono" }, x.id), h("td", {}, x.node_name), h("td", {}, badge(x.status),
          x.reason ? h("div", { class: "muted" }, x.reason) : null,
          x.retrying ? h("div", { class: "retry-at", title: x.retry_at }, "retry at ", inZone(x.retry_at, state.zone))
            : null,
          (x.notifications || []).filter((n) => n.outcome === "gave_up").map((n) =>
            h("div", { class: "muted gave-up", title: n.error }, `${n.kind} notice given up after ${n.attempts}`))),
        h("td", { class: "scheduled" }, inZone(x.scheduled_at, state.zone)),
        h("td", { class: "started" }, inZone(x.started_at, state.zone)),
        h("td", { class: "num late", title: "started after its tick plus its jitter" }, millis(lateness(x))),
        h("td", { class: "num jitter" }, x.scheduled_at ? millis(x.jitter_ms ?? 0) : "-"),
        h("td", {}, inZone(x.finished_at, state.zone)),
        h("td", { class: "num" }, seconds(duration(x))), h("td", { class: "num" }, x.exit_code ?? "-"),
        h("td", { class: "num" }, x.attempt),
        h("td", {}, h("button", { class: "show-output", onclick: toggle }, open ? "Hide output" : "Output"),
          running(x) && may("update") ? [" ", h("button", { class: "danger kill-row", onclick: kill(x) }, "Kill")] : null)));
      if (open) rows.push(h("tr", { class: "output-row" }, h("td", { colspan: 12 }, outputCell(x))));
    }
    return h("table", { id: "execution-table" }, rows);
  }

  function outputCell(x) {
    const text = state.full.get(x.id) ?? x.output;
    const pre = h("pre", { class: "output" }, text || "(no output)");
    if (!x.output_truncated || state.full.has(x.id)) return pre;
    const load = act("Load output", async () => {
      const full = await api("GET", `${path}/executions/${enc(x.id)}`);
      state.full.set(x.id, full.data.output);
      pre.textContent = full.data.output;
      button.remove();
    });
    const button = h("button", { onclick: load }, "Load full output");
    return [button, pre];
  }

  return { stop() { state.abort.abort(); return poll.stop(); } };
}

const TIMES = new Set(["next", "last_success", "last_error", "starts_at", "expires_at"]);

function describe(job, zone) {
  const keys = ["name", "displayname", "schedule", "timezone", "executor", "executor_config", "disabled", "concurrency",
    "retries", "retry_interval", "max_retry_interval", "timeout", "misfire_policy", "catchup_window", "jitter", "history_limit", "parent_job",
    "dependent_jobs", "tags", "metadata", "processors", "owner", "owner_email", "ephemeral", "starts_at", "expires_at",
    "next", "last_success", "last_error", "success_count", "error_count", "skipped_count"];
  const show = (v) => (v === null || v === undefined || v === "" || v === ZERO_TIME ? "-"
    : typeof v === "object" ? JSON.stringify(v) : String(v));
  return h("dl", { class: "def" }, keys.filter((k) => k in job).map((k) => [h("dt", {}, k),
    h("dd", { "data-field": k }, TIMES.has(k) ? inZone(job[k], zone) : show(job[k]))]));
}

// One bar per execution, oldest first: height is how long it took, colour its outcome.
function drawChart(list) {
  if (!list.length) return h("span", { class: "muted" }, "No runs yet.");
  const width = 600, height = 120, pad = 40;
  const took = list.map((x) => duration(x) ?? 0);
  const longest = Math.max(...took, 0.001);
  const step = (width - pad) / Math.max(list.length, 10);
  const bars = list.map((x, i) => {
    const tall = Math.max(2, (took[i] / longest) * (height - pad));
    return svg("rect", { x: pad + i * step + 1, y: height - pad - tall, width: Math.max(2, step - 2), height: tall,
      class: x.status, "data-execution": x.id },
    svg("title", {}, `${x.id}: ${x.status}, ${seconds(duration(x))}`));
  });
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "Recent run durations" },
    svg("text", { x: 0, y: 10 }, seconds(longest)), svg("text", { x: 0, y: height - pad }, "0s"),
    svg("line", { x1: pad, y1: height - pad, x2: width, y2: height - pad, stroke: "#dde1e8" }),
    ...bars,
    svg("text", { x: pad, y: height - 6 }, `last ${list.length} runs, oldest first`));
}

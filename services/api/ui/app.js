// pykron's UI: a hash router over three views (dashboard, job page, job form), each refreshing
// itself from the /v1 API while shown and stopping when left. No build step: ES modules as is.

import { api, badge, can, defaultZone, enc, h, inZone, jobPath, jobZone, loadRights, notice, poller, running, setToken,
  when } from "/ui/lib.js";
import { jobPage } from "/ui/job.js";
import { jobForm } from "/ui/form.js";

let current = null;

async function route() {
  if (current) current.stop();
  current = null;
  notice("");
  try {
    await loadRights();
  } catch (err) {
    if (err.status === 401) return askToken({ detail: err.message });
    notice(`Cannot reach the API: ${err.message}`);  // the view's own calls will say more
  }
  document.getElementById("new-job").hidden = !can(jobPath("*"), "create");
  const view = document.getElementById("view");
  view.replaceChildren();
  const parts = (location.hash.replace(/^#/, "") || "/").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "new") current = jobForm(view, null);
  else if (parts[0] === "jobs" && parts[1] && parts[2] === "edit") current = jobForm(view, parts[1]);
  else if (parts[0] === "jobs" && parts[1]) current = jobPage(view, parts[1]);
  else current = dashboard(view);
}

function askToken(event) {
  if (current) current.stop();
  const why = event && event.detail && localStorage.getItem("pykron.token")
    ? `The token given was refused: ${event.detail}.` : "This pykron API asks for a token (X-Dkron-Token).";
  const input = h("input", { type: "password", id: "token", autocomplete: "off", size: 40 });
  const save = (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    route();
  };
  document.getElementById("view").replaceChildren(
    h("h1", {}, "Token needed"),
    h("p", { id: "token-why" }, `${why} It is kept in this browser only.`),
    h("form", { onsubmit: save }, input, " ", h("button", { class: "primary" }, "Use token")));
}

function dashboard(view) {
  const cards = h("div", { class: "cards", id: "cards" });
  const jobs = h("div", { id: "jobs" }, h("p", { class: "muted" }, "Loading jobs…"));
  const busy = h("div", { id: "busy" });
  const members = h("div", { id: "members" });
  view.append(h("h1", {}, "Dashboard"), cards, h("h2", {}, "Jobs"), jobs,
    h("h2", {}, "Running now"), busy, h("h2", {}, "Members"), members);
  return poller(async () => {
    const [jobList, busyList, memberList, leader, zone] = await Promise.all([
      api("GET", "/jobs"), api("GET", "/busy"), api("GET", "/members"),
      api("GET", "/leader").catch(() => null), defaultZone()]);
    const runningJobs = new Set(busyList.data.map((x) => x.job_name));
    const statusOf = (job) => (runningJobs.has(job.name) ? "running" : job.status || "untriggered");
    const count = (status) => jobList.data.filter((j) => statusOf(j) === status).length;
    document.getElementById("whom").textContent = `served by ${jobList.headers.get("X-Whom") || "?"}`;
    cards.replaceChildren(
      card("Leader", leader ? leader.data.Name : "none"), card("Jobs", jobList.data.length),
      card("Running", count("running")), card("Succeeded", count("success")), card("Failed", count("failed")),
      card("Untriggered", count("untriggered")));
    jobs.replaceChildren(jobTable(jobList.data, statusOf, zone));
    busy.replaceChildren(busyList.data.length ? busyTable(busyList.data) : h("p", { class: "muted" }, "Nothing is running."));
    members.replaceChildren(memberTable(memberList.data));
  });
}

function card(label, value) {
  return h("div", { class: "card", "data-card": label }, h("span", { class: "muted" }, label), h("b", {}, value));
}

function lastRun(job) {
  const times = [job.last_success, job.last_error].filter(Boolean).sort();
  return times.length ? times[times.length - 1] : null;
}

// Each job's times in its own zone (UTC on hover).
function jobTable(jobs, statusOf, zone) {
  if (!jobs.length) return h("p", { class: "muted" }, "No jobs yet. ", h("a", { href: "#/new" }, "Create one."));
  const run = (name) => async () => {
    try {
      await api("POST", `/jobs/${enc(name)}`);
      notice(`Started ${name}.`);
    } catch (err) {
      notice(err.status === 403 ? `Not allowed with this token: ${err.message}` : `Cannot run ${name}: ${err.message}`);
    }
  };
  return h("table", { id: "job-table" },
    h("tr", {}, ["Name", "Schedule", "Status", "Last run", "Next run", "Success", "Errors", "Skipped", "Enabled", ""]
      .map((c) => h("th", {}, c))),
    jobs.map((job) => h("tr", { "data-job": job.name },
      h("td", {}, h("a", { href: `#/jobs/${enc(job.name)}` }, job.name),
        job.displayname ? h("div", { class: "muted" }, job.displayname) : null),
      h("td", { class: "mono" }, job.schedule || (job.parent_job ? `after ${job.parent_job}` : "-")),
      h("td", {}, badge(statusOf(job))),
      h("td", {}, inZone(lastRun(job), jobZone(job, zone))),
      h("td", { class: "next" }, inZone(job.next, jobZone(job, zone))),
      h("td", { class: "num" }, job.success_count),
      h("td", { class: "num" }, job.error_count),
      h("td", { class: "num" }, job.skipped_count ?? 0),
      h("td", {}, job.disabled ? "no" : "yes"),
      h("td", {}, can(jobPath(job.name), "update")
        ? h("button", { onclick: run(job.name), title: "Run now" }, "Run") : null))));
}

function busyTable(executions) {
  return h("table", { id: "busy-table" },
    h("tr", {}, ["Job", "Execution", "Node", "Started", "Last output"].map((c) => h("th", {}, c))),
    executions.map((x) => h("tr", {},
      h("td", {}, h("a", { href: `#/jobs/${enc(x.job_name)}` }, x.job_name)),
      h("td", { class: "mono" }, x.id), h("td", {}, x.node_name),
      h("td", {}, running(x) ? when(x.started_at) : "-"),
      h("td", { class: "mono" }, (x.output || "").split("\n").filter(Boolean).pop() || ""))));
}

function memberTable(members) {
  return h("table", { id: "member-table" },
    h("tr", {}, ["Name", "Address", "Status", "Tags"].map((c) => h("th", {}, c))),
    members.map((m) => h("tr", { "data-member": m.Name },
      h("td", {}, m.Name), h("td", { class: "mono" }, `${m.Addr}:${m.Port}`),
      h("td", {}, h("span", { class: `badge ${m.statusText === "alive" ? "success" : "failed"}` }, m.statusText)),
      h("td", { class: "mono" }, Object.entries(m.Tags || {}).map(([k, v]) => `${k}=${v}`).join(" ")))));
}

window.addEventListener("hashchange", route);
window.addEventListener("pykron:unauthorized", askToken);
route();

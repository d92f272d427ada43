// The status page: renders /api/v1/status and /api/v1/history, again after each run the
// agent announces on /api/v1/events (and every 30 s, for changes no run made: drift).
// Everything from the agent is written as text, never as markup.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const shortCommit = (commit) => (commit ? commit.slice(0, 7) : "");
const shortDigest = (digest) => (digest ? digest.replace(/^[a-z0-9]+:/, "").slice(0, 12) : "");
const time = (at) => (at ? at.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "");
const revision = (r) => (r ? `${r.version} (${r.ref} @ ${shortCommit(r.commit)})` : "none");

async function get(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function reason(pack) {
  switch (pack.state) {
    case "failed":
      if (pack.last_failure) return `${pack.last_failure.action} failed at ${time(pack.last_failure.at)}: ${pack.last_failure.error}`;
      if (pack.failed_build) return `env build failed ${pack.failed_build.failures}x, next try ${time(pack.failed_build.retry_after)}: ${pack.failed_build.cause}`;
      return pack.problem ? `cannot be read: ${pack.problem}` : "its desired state cannot be read (packsync check says why)";
    case "pending":
      return `apply would ${pack.pending}`;
    case "suspended":
      return pack.suspended;
    case "drifted":
      return pack.engine && pack.engine.drift
        ? `StackStorm has ${pack.engine.registered ? pack.engine.registered.version : "nothing"} registered`
        : "disk disagrees with the record";
    case "broken":
      return "the live virtualenv is incomplete; apply builds it again";
    default:
      return null;
  }
}

function packRow(pack) {
  const live = pack.active
    ? [el("span", { class: "version" }, pack.active.version), " ",
       el("code", { class: "release" }, pack.active.release),
       el("div", { class: "muted" }, `${pack.active.ref} @ ${shortCommit(pack.active.commit)}, since ${time(pack.active.since)}`)]
    : el("span", { class: "muted" }, "nothing live");
  const why = reason(pack);
  const env = !pack.active ? "" : pack.active.env_verified === false ? "unverified" : "verified";
  const change = pack.last_change
    ? [`${pack.last_change.action} ${pack.last_change.outcome}`, el("div", { class: "muted" }, time(pack.last_change.at))]
    : el("span", { class: "muted" }, "none");
  return el("tr", { "data-pack": pack.pack, "data-state": pack.state },
    el("td", { class: "pack" }, el("strong", {}, pack.pack), pack.enabled ? null : el("div", { class: "muted" }, "disabled")),
    el("td", { class: "desired" }, pack.desired ?? el("span", { class: "muted" }, "not in the site config")),
    el("td", { class: "live" }, live),
    el("td", { class: `state state-${pack.state}` }, pack.state, why ? el("span", { class: "reason" }, why) : null),
    el("td", { class: "env" }, env, pack.active ? el("div", { class: "mono muted" }, shortDigest(pack.active.env)) : null),
    el("td", { class: "change" }, change),
    el("td", { class: "releases", title: pack.releases.join("\n") }, String(pack.releases.length)));
}

function renderRunners(runners) {
  const section = $("#runners");
  section.hidden = !runners;
  if (!runners) return;
  const parts = [`${runners.state}: `, runners.active ? `set ${shortDigest(runners.active)} (${runners.runners.join(", ")})` : "no set live"];
  if (runners.pending) parts.push(`; pending set ${shortDigest(runners.pending)}`);
  $("p", section).replaceChildren(...parts);
}

function renderFleet(fleet) {
  const section = $("#fleet");
  section.hidden = !fleet;
  if (!fleet) return;
  $(".name", section).textContent = `${fleet.name} (${fleet.hosts.length} hosts)`;
  $("thead tr", section).replaceChildren(el("th", {}, "Pack"), ...fleet.hosts.map((host) => el("th", {}, host)));
  $("tbody", section).replaceChildren(...fleet.packs.map((pack) =>
    el("tr", { "data-pack": pack.pack }, el("td", {}, pack.pack),
      ...fleet.hosts.map((host) => el("td", { class: "mono", "data-host": host }, pack.hosts[host] ?? "–")))));
  $(".rollouts", section).replaceChildren(...fleet.rollouts.map((rollout) =>
    el("li", {}, `${rollout.pack} ${rollout.release}: ${rollout.phase} (attempt ${rollout.attempt}), ` +
      `prepared ${Object.keys(rollout.prepared).length}/${fleet.hosts.length}, switched ${Object.keys(rollout.switched).length}`,
      rollout.reason ? el("div", { class: "muted" }, rollout.reason) : null)));
}

function renderOtherHosts(others) {
  const section = $("#other-hosts");
  section.hidden = !others || others.length === 0;
  if (section.hidden) return;
  $(".hosts", section).replaceChildren(...others.map((host) =>
    el("div", { "data-host": host.host }, el("h3", {}, host.host),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Pack"), el("th", {}, "State"), el("th", {}, "Live"))),
        el("tbody", {}, ...host.packs.map((pack) =>
          el("tr", { "data-pack": pack.pack }, el("td", {}, pack.pack),
            el("td", { class: `state state-${pack.state}` }, pack.state),
            el("td", {}, pack.active ? pack.active.release : "–"))))))));
}

function renderHistory(entries) {
  $("#history").replaceChildren(...entries.map((entry) =>
    el("li", { class: `outcome-${entry.outcome}`, "data-pack": entry.pack },
      el("span", { class: "muted" }, time(entry.at)), " ", el("strong", {}, entry.pack), ` ${entry.action} ${entry.outcome}: `,
      `${revision(entry.from)} → ${revision(entry.to)}`, ` on ${entry.host}`,
      entry.error ? el("div", { class: "reason" }, entry.error) : null)));
  if (entries.length === 0) $("#history").append(el("li", { class: "muted" }, "No history yet"));
}

let live = false;
let loads = 0;

async function load() {
  try {
    const [status, history] = await Promise.all([get("api/v1/status"), get("api/v1/history?limit=50")]);
    $("#host").textContent = status.host;
    const suspended = $("#suspended");
    suspended.hidden = !status.host_suspended;
    if (status.host_suspended) {
      suspended.textContent = `This host is suspended since ${time(status.host_suspended.at)} (${status.host_suspended.reason}): nothing changes until packsync resume`;
    }
    $("#packs tbody").replaceChildren(...status.packs.map(packRow));
    renderRunners(status.runners);
    renderFleet(status.fleet);
    renderOtherHosts(status.other_hosts);
    renderHistory(history.entries);
    $("#problem").hidden = true;
    loads += 1;
    document.body.dataset.loads = String(loads);
    $("#freshness").textContent = `Updated ${new Date().toLocaleTimeString()} · ${live ? "live" : "polling"}`;
  } catch (error) {
    const problem = $("#problem");
    problem.hidden = false;
    problem.textContent = `Cannot read the agent: ${error.message}`;
  }
}

const events = new EventSource("api/v1/events");
events.addEventListener("open", () => { live = true; });
events.addEventListener("error", () => { live = false; });
events.addEventListener("run", (event) => {
  document.body.dataset.run = event.data;
  load();
});
setInterval(load, 30000);
load();

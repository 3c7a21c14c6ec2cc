// Offline check of the k8s/ tree: renders each kustomization below with
// `kubectl kustomize` ($KUBECTL, default kubectl), validates every object against its
// schema (kubernetes-models for the Kubernetes APIs, @kubernetes-models/prometheus-operator
// and @kubernetes-models/keda for the CRDs; a kind without a schema fails), then holds
// the rendered objects to the project's rules (probes, limits, non-root, GPU requests,
// NetworkPolicies, references). Self-checks first feed broken objects to each rule and
// pass only when the rule rejects them. Prints `ok - ...` / `not ok - ...` per check and
// ends with `k8s manifests test: N passed, M failed` (exit 1 when M > 0).
//
//   node k8s/test/validate_manifests.mjs
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const k8sDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const kubectl = process.env.KUBECTL || "kubectl";

// What is rendered: each overlay alone, and each with every component it supports.
const KUSTOMIZATIONS = [
  { dir: "overlays/cpu", gpu: false },
  { dir: "overlays/gpu", gpu: true },
  { dir: "test/cases/cpu-all", gpu: false },
  { dir: "test/cases/gpu-all", gpu: true },
];

let passed = 0;
let failed = 0;
function check(ok, what, detail = "") {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "ok" : "not ok"} - ${what}${!ok && detail ? `: ${detail}` : ""}`);
}

// ---- schemas ---------------------------------------------------------------------------
async function modelModule(apiVersion) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "monitoring.coreos.com")
    return import(`@kubernetes-models/prometheus-operator/${group}/${version}`);
  if (group === "keda.sh") return import(`@kubernetes-models/keda/${group}/${version}`);
  if (group === "") return import(`kubernetes-models/${version}`);
  return import(`kubernetes-models/${group}/${version}`);
}

// The schema error of `obj`, or "" when it validates.
async function schemaError(obj) {
  let module;
  try {
    module = await modelModule(obj.apiVersion || "");
  } catch {
    return `no schema for apiVersion ${obj.apiVersion}`;
  }
  const Model = module[obj.kind];
  // The modules also export nested types (v1 has Probe, Container, ...): only a class
  // whose own apiVersion and kind are the object's is its schema.
  if (!Model || Model.apiVersion !== obj.apiVersion || Model.kind !== obj.kind)
    return `no schema for ${obj.apiVersion} ${obj.kind}`;
  try {
    new Model(obj).validate();
    return "";
  } catch (e) {
    return String(e.message || e).split("\n").slice(0, 3).join(" ");
  }
}

// ---- rules -----------------------------------------------------------------------------
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job"]);
const name = (o) => `${o.kind}/${o.metadata?.name}`;
const podSpec = (o) => o.spec?.template?.spec;
const podLabels = (o) => o.spec?.template?.metadata?.labels || {};
const matches = (selector, labels) =>
  Object.entries(selector || {}).every(([k, v]) => labels[k] === v);

// Problems of one workload's pod template: probes, resources, security context.
function containerProblems(workload) {
  const spec = podSpec(workload) || {};
  const problems = [];
  const podSc = spec.securityContext || {};
  for (const c of [...(spec.initContainers || []), ...(spec.containers || [])]) {
    const where = `${name(workload)} container ${c.name}`;
    const init = (spec.initContainers || []).includes(c);
    if (!init && !c.livenessProbe) problems.push(`${where} has no livenessProbe`);
    if (!init && !c.readinessProbe) problems.push(`${where} has no readinessProbe`);
    for (const kind of ["requests", "limits"])
      for (const r of ["cpu", "memory"])
        if (!c.resources?.[kind]?.[r]) problems.push(`${where} has no ${kind}.${r}`);
    const sc = c.securityContext || {};
    const nonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
    const user = sc.runAsUser ?? podSc.runAsUser;
    if (nonRoot !== true) problems.push(`${where} is not runAsNonRoot`);
    if (user === 0) problems.push(`${where} runs as uid 0`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${where} has a writable root filesystem`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where} allows privilege escalation`);
    if (sc.privileged) problems.push(`${where} is privileged`);
    if (!(sc.capabilities?.drop || []).includes("ALL")) problems.push(`${where} keeps capabilities`);
  }
  return problems;
}

const isWorker = (o) => podLabels(o)["app.kubernetes.io/component"] === "worker";

function gpuProblems(objects, gpu) {
  const problems = [];
  const workers = objects.filter((o) => WORKLOADS.has(o.kind) && isWorker(o));
  if (workers.length === 0) problems.push("no worker workload");
  for (const w of workers) {
    const spec = podSpec(w);
    const wantsGpu = spec.containers.some((c) => c.resources?.limits?.["nvidia.com/gpu"]);
    if (gpu) {
      if (w.kind !== "DaemonSet") problems.push(`${name(w)}: GPU workers are a DaemonSet`);
      if (!wantsGpu) problems.push(`${name(w)} does not limit nvidia.com/gpu`);
      if (!spec.nodeSelector || !Object.keys(spec.nodeSelector).some((k) => k.startsWith("nvidia.com/")))
        problems.push(`${name(w)} has no nvidia.com node selector`);
      if (!(spec.tolerations || []).some((t) => t.key === "nvidia.com/gpu"))
        problems.push(`${name(w)} does not tolerate nvidia.com/gpu`);
    } else if (wantsGpu) {
      problems.push(`${name(w)} asks for a GPU in a CPU overlay`);
    }
  }
  return problems;
}

function referenceProblems(objects) {
  const problems = [];
  const pods = objects.filter((o) => WORKLOADS.has(o.kind));
  const byKindName = new Set(objects.map((o) => `${o.kind}/${o.metadata?.name}`));
  for (const s of objects.filter((o) => o.kind === "Service")) {
    if (!pods.some((p) => matches(s.spec?.selector, podLabels(p))))
      problems.push(`${name(s)} selects no pod template`);
  }
  for (const np of objects.filter((o) => o.kind === "NetworkPolicy")) {
    if (!pods.some((p) => matches(np.spec?.podSelector?.matchLabels, podLabels(p))))
      problems.push(`${name(np)} selects no pod template`);
  }
  for (const so of objects.filter((o) => o.kind === "ScaledObject")) {
    const ref = so.spec?.scaleTargetRef || {};
    if (!byKindName.has(`${ref.kind || "Deployment"}/${ref.name}`))
      problems.push(`${name(so)} scales ${ref.kind}/${ref.name}, which is not rendered`);
  }
  for (const m of objects.filter((o) => o.kind === "ServiceMonitor")) {
    if (!objects.some((s) => s.kind === "Service" && matches(m.spec?.selector?.matchLabels, s.metadata?.labels || {})))
      problems.push(`${name(m)} selects no Service`);
  }
  for (const m of objects.filter((o) => o.kind === "PodMonitor")) {
    if (!pods.some((p) => matches(m.spec?.selector?.matchLabels, podLabels(p))))
      problems.push(`${name(m)} selects no pod template`);
  }
  problems.push(...configProblems(objects));
  return problems;
}

// Secrets made by hand (kubectl create secret) are not rendered: their names and keys
// come from the templates beside the manifests instead.
const SECRET_TEMPLATES = ["base/secret-template.yaml", "components/postgres/secret-template.yaml"];
function templateSecrets() {
  const keys = new Map();
  for (const file of SECRET_TEMPLATES)
    for (const doc of YAML.parseAllDocuments(readFileSync(path.join(k8sDir, file), "utf8"))) {
      const o = doc.toJS();
      if (o?.kind === "Secret")
        keys.set(o.metadata.name, new Set(Object.keys({ ...o.data, ...o.stringData })));
    }
  return keys;
}

// Every ConfigMap a pod reads is rendered, every Secret and key it reads is rendered or
// in a template (optional references excepted: the pod starts without them).
function configProblems(objects) {
  const problems = [];
  const configMaps = new Map(objects.filter((o) => o.kind === "ConfigMap")
    .map((o) => [o.metadata.name, new Set(Object.keys({ ...o.data, ...o.binaryData }))]));
  const secrets = templateSecrets();
  for (const o of objects.filter((x) => x.kind === "Secret"))
    secrets.set(o.metadata.name, new Set(Object.keys({ ...o.data, ...o.stringData })));
  const need = (where, kind, store, ref, key) => {
    if (ref.optional) return;
    if (!store.has(ref.name)) problems.push(`${where} reads ${kind} ${ref.name}, which does not exist`);
    else if (key !== undefined && !store.get(ref.name).has(key))
      problems.push(`${where} reads key ${key} of ${kind} ${ref.name}, which has no such key`);
  };
  for (const w of objects.filter((o) => WORKLOADS.has(o.kind))) {
    const spec = podSpec(w) || {};
    for (const v of spec.volumes || []) {
      const where = `${name(w)} volume ${v.name}`;
      if (v.configMap) need(where, "ConfigMap", configMaps, v.configMap);
      if (v.secret) need(where, "Secret", secrets, { name: v.secret.secretName, optional: v.secret.optional });
      for (const item of v.configMap?.items || []) need(where, "ConfigMap", configMaps, v.configMap, item.key);
      for (const item of v.secret?.items || [])
        need(where, "Secret", secrets, { name: v.secret.secretName, optional: v.secret.optional }, item.key);
    }
    for (const c of [...(spec.initContainers || []), ...(spec.containers || [])]) {
      const where = `${name(w)} container ${c.name}`;
      for (const e of c.env || []) {
        const cm = e.valueFrom?.configMapKeyRef;
        const sk = e.valueFrom?.secretKeyRef;
        if (cm) need(`${where} env ${e.name}`, "ConfigMap", configMaps, cm, cm.key);
        if (sk) need(`${where} env ${e.name}`, "Secret", secrets, sk, sk.key);
      }
      for (const from of c.envFrom || []) {
        if (from.configMapRef) need(where, "ConfigMap", configMaps, from.configMapRef);
        if (from.secretRef) need(where, "Secret", secrets, from.secretRef);
      }
    }
  }
  return problems;
}

// The tuner admits only the scheduler; the scheduler admits only workers, clients and
// monitoring; a default deny covers every pod.
function networkProblems(objects) {
  const problems = [];
  const policies = objects.filter((o) => o.kind === "NetworkPolicy");
  const pods = objects.filter((o) => WORKLOADS.has(o.kind));
  for (const p of pods) {
    if (!policies.some((np) => matches(np.spec?.podSelector?.matchLabels, podLabels(p))))
      problems.push(`${name(p)} is covered by no NetworkPolicy`);
  }
  const tuner = policies.filter((np) => np.spec?.podSelector?.matchLabels?.["app.kubernetes.io/component"] === "tuner");
  if (tuner.length === 0) problems.push("no NetworkPolicy for the tuner");
  // Peers other than this namespace's scheduler pods are only allowed on rules that
  // open nothing but the metrics port (Prometheus from its namespace).
  const schedulerOnly = (peer) => !peer.namespaceSelector && !peer.ipBlock &&
    peer.podSelector?.matchLabels?.["app.kubernetes.io/component"] === "scheduler";
  const metricsOnly = (rule) => (rule.ports || []).length > 0 &&
    rule.ports.every((p) => p.port === 9401 || p.port === "metrics");
  for (const np of tuner)
    for (const rule of np.spec.ingress || [])
      if (!metricsOnly(rule) && !(rule.from || []).every(schedulerOnly))
        problems.push(`${name(np)} admits pods other than the scheduler`);
  for (const np of policies)
    for (const rule of np.spec?.ingress || [])
      if (!rule.from || rule.from.length === 0) problems.push(`${name(np)} admits every source`);
  return problems;
}

async function allProblems(objects, gpu) {
  const problems = [];
  for (const o of objects) {
    const error = await schemaError(o);
    if (error) problems.push(`${name(o)} schema: ${error}`);
    if (WORKLOADS.has(o.kind)) problems.push(...containerProblems(o));
  }
  problems.push(...gpuProblems(objects, gpu), ...referenceProblems(objects), ...networkProblems(objects));
  return problems;
}

// ---- self-checks: each rule rejects what it should ------------------------------------
function render(dir) {
  const text = execFileSync(kubectl, ["kustomize", path.join(k8sDir, dir)], { encoding: "utf8" });
  return YAML.parseAllDocuments(text).map((d) => d.toJS()).filter(Boolean);
}

async function selfChecks(base) {
  const clone = () => structuredClone(base);
  const worker = (objs) => objs.find((o) => WORKLOADS.has(o.kind) && isWorker(o));
  const scheduler = (objs) => objs.find((o) => o.kind === "StatefulSet");
  const breaks = [
    ["a container without a liveness probe", (o) => { delete podSpec(scheduler(o)).containers[0].livenessProbe; }],
    ["a container without limits", (o) => { delete podSpec(scheduler(o)).containers[0].resources.limits; }],
    ["a root container", (o) => { podSpec(scheduler(o)).securityContext.runAsNonRoot = false; }],
    ["a writable root filesystem", (o) => { podSpec(scheduler(o)).containers[0].securityContext.readOnlyRootFilesystem = false; }],
    ["a GPU request in the CPU overlay", (o) => { podSpec(worker(o)).containers[0].resources.limits["nvidia.com/gpu"] = 1; }],
    ["a wrong type (replicas: \"two\")", (o) => { scheduler(o).spec.replicas = "two"; }],
    ["a container without a name", (o) => { delete podSpec(scheduler(o)).containers[0].name; }],
    ["a kind without a schema", (o) => { o.push({ apiVersion: "example.com/v1", kind: "Thing", metadata: { name: "x" } }); }],
    ["a Service selecting nothing", (o) => { o.find((x) => x.kind === "Service").spec.selector = { app: "none" }; }],
    ["a tuner open to every namespace", (o) => {
      const np = o.find((x) => x.kind === "NetworkPolicy" && x.metadata.name === "autocompress-tuner");
      np.spec.ingress.push({ from: [{ namespaceSelector: {} }], ports: [{ port: 7401 }] });
    }],
    ["a ConfigMap volume that is not rendered", (o) => {
      podSpec(scheduler(o)).volumes.push({ name: "cfg", configMap: { name: "no-such-config" } });
    }],
    ["a Secret key that no template has", (o) => {
      podSpec(scheduler(o)).containers[0].env[0].valueFrom.secretKeyRef.key = "no-such-key";
    }],
    ["a nested type posing as a kind (v1 Probe)", (o) => { o.push({ apiVersion: "v1", kind: "Probe", metadata: { name: "x" } }); }],
    ["a tuner open to the workers", (o) => {
      const np = o.find((x) => x.kind === "NetworkPolicy" && x.metadata.name === "autocompress-tuner");
      np.spec.ingress[0].from.push({ podSelector: { matchLabels: { "app.kubernetes.io/component": "worker" } } });
    }],
  ];
  check((await allProblems(clone(), false)).length === 0, "self-check: the cpu overlay as rendered passes");
  for (const [what, mutate] of breaks) {
    const objects = clone();
    mutate(objects);
    const problems = await allProblems(objects, false);
    check(problems.length > 0, `self-check: the rules reject ${what}`, "no problem found");
  }
  const gpuObjects = render("overlays/gpu");
  delete podSpec(worker(gpuObjects)).containers[0].resources.limits["nvidia.com/gpu"];
  check((await allProblems(gpuObjects, true)).length > 0, "self-check: the rules reject a GPU worker without nvidia.com/gpu");
}

// ---- main ------------------------------------------------------------------------------
async function main() {
  const rendered = new Map();
  for (const { dir } of KUSTOMIZATIONS) {
    try {
      rendered.set(dir, render(dir));
      check(true, `${dir}: kubectl kustomize renders ${rendered.get(dir).length} objects`);
    } catch (e) {
      check(false, `${dir}: kubectl kustomize renders`, String(e.stderr || e.message).trim());
    }
  }
  if (rendered.has("overlays/cpu")) await selfChecks(rendered.get("overlays/cpu"));
  for (const { dir, gpu } of KUSTOMIZATIONS) {
    const objects = rendered.get(dir);
    if (!objects) continue;
    for (const o of objects) {
      const error = await schemaError(o);
      check(!error, `${dir}: ${name(o)} validates against its schema`, error);
    }
    for (const o of objects.filter((x) => WORKLOADS.has(x.kind))) {
      const problems = containerProblems(o);
      check(problems.length === 0, `${dir}: ${name(o)} has probes, requests, limits and a locked-down non-root securityContext`, problems.join("; "));
    }
    const rules = [
      [gpu ? "GPU workers are a DaemonSet with nvidia.com/gpu, node selector and toleration" : "CPU workers ask for no GPU", gpuProblems(objects, gpu)],
      ["Services, NetworkPolicies, monitors and the ScaledObject select what is rendered; the ConfigMaps and Secrets pods read exist", referenceProblems(objects)],
      ["every pod is under a NetworkPolicy; the tuner admits only the scheduler", networkProblems(objects)],
    ];
    for (const [what, problems] of rules) check(problems.length === 0, `${dir}: ${what}`, problems.join("; "));
  }
  console.log(`k8s manifests test: ${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

await main();

//! `charts/packsync`: with Helm's own library (helm-python-sdk) and the Kubernetes schemas, in
//! the venv of `scripts/with-mongodb`, the chart lints clean, its values schema refuses typos,
//! every object it renders validates strictly (`tests/fixtures/render_chart.py`), the objects
//! are the ones the agent needs, and the packsync.toml it renders is a site config packsync
//! loads. Its registration hook runs against a stub st2api (`hook`).

mod hook;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use packsync::config::{SiteConfig, StateConfig};
use serde_json::{Value, json};

use crate::common::repo_path;
use crate::common::site::{PackEntry, TestSite, assert_exit, packsync};

/// Where the chart mounts the URL Secrets; the tests put the files under a temp dir instead.
const SECRETS_DIR: &str = "/etc/packsync/secrets/";
const HOOK: &str = "charts/packsync/files/st2_register.py";

/// `render_chart.py` on `values`: lint, schema, render, Kubernetes validation.
fn run_chart(values: &Value) -> Output {
    let python = std::env::var_os("PACKSYNC_TEST_TOOLS_PYTHON").expect(
        "PACKSYNC_TEST_TOOLS_PYTHON is not set: run through scripts/with-mongodb \
         (`scripts/with-mongodb cargo test`), which installs Helm and the Kubernetes schemas",
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("values.json");
    fs_err::write(&file, values.to_string()).expect("the values file is written");
    Command::new(python)
        .arg(repo_path("tests/fixtures/render_chart.py"))
        .arg(repo_path("charts/packsync"))
        .arg(&file)
        .output()
        .expect("render_chart.py runs")
}

/// The objects the chart renders with `values`, which must pass every check.
fn render(values: &Value) -> Rendered {
    let output = run_chart(values);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the chart fails with {values}:\n{stderr}"
    );
    match serde_json::from_slice(&output.stdout).expect("render_chart.py prints JSON") {
        Value::Array(objects) => Rendered(objects),
        other => panic!("not a list of objects: {other}"),
    }
}

/// What `render_chart.py` says when it refuses `values`.
fn refused(values: &Value) -> String {
    let output = run_chart(values);
    assert!(
        !output.status.success(),
        "the chart accepts {values}: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct Rendered(Vec<Value>);

impl Rendered {
    fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .0
            .iter()
            .map(|o| format!("{}/{}", o["kind"].as_str().expect("a kind"), name(o)))
            .collect();
        kinds.sort();
        kinds
    }

    fn get(&self, kind: &str, name_: &str) -> &Value {
        self.0
            .iter()
            .find(|o| o["kind"] == kind && name(o) == name_)
            .unwrap_or_else(|| panic!("no {kind} {name_} in {:?}", self.kinds()))
    }

    /// The pod template of the `Deployment` or the `CronJob`.
    fn pod(&self) -> &Value {
        self.0
            .iter()
            .find_map(|o| match o["kind"].as_str() {
                Some("Deployment") => Some(&o["spec"]["template"]),
                Some("CronJob") => Some(&o["spec"]["jobTemplate"]["spec"]["template"]),
                _ => None,
            })
            .expect("a Deployment or a CronJob")
    }

    fn container(&self) -> &Value {
        let containers = self.pod()["spec"]["containers"]
            .as_array()
            .expect("containers");
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["name"], "packsync");
        &containers[0]
    }

    /// `name -> (mountPath, readOnly)` of the container's mounts.
    fn mounts(&self) -> BTreeMap<String, (String, bool)> {
        self.container()["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().expect("a name").to_string(),
                    (
                        m["mountPath"].as_str().expect("a path").to_string(),
                        m["readOnly"].as_bool().unwrap_or(false),
                    ),
                )
            })
            .collect()
    }

    /// `name -> volume` of the pod.
    fn volumes(&self) -> BTreeMap<String, Value> {
        self.pod()["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| (name_of(v).to_string(), v.clone()))
            .collect()
    }

    fn env(&self, var: &str) -> Option<&Value> {
        self.container()["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == var)
    }

    fn site_config(&self) -> &str {
        self.get("ConfigMap", "packsync")["data"]["packsync.toml"]
            .as_str()
            .expect("packsync.toml in the ConfigMap")
    }
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().expect("a name")
}

fn name_of(item: &Value) -> &str {
    item["name"].as_str().expect("a name")
}

fn mounts(expected: &[(&str, &str, bool)]) -> BTreeMap<String, (String, bool)> {
    expected
        .iter()
        .map(|(name, path, read_only)| (name.to_string(), (path.to_string(), *read_only)))
        .collect()
}

/// The rendered packsync.toml loaded by packsync's own loader, with the Secret files it names
/// (`secrets`: path under the secrets folder, content) written under a temp dir.
fn load_site_config(text: &str, secrets: &[(&str, &str)]) -> SiteConfig {
    let dir = tempfile::tempdir().expect("a temp dir");
    let secrets_dir = dir.path().join("secrets");
    for (path, content) in secrets {
        let file = secrets_dir.join(path);
        fs_err::create_dir_all(file.parent().expect("a folder")).expect("the folder is made");
        fs_err::write(&file, content).expect("the secret file is written");
    }
    let text = text.replace(SECRETS_DIR, &format!("{}/", secrets_dir.display()));
    let path = dir.path().join("packsync.toml");
    fs_err::write(&path, &text).expect("the config is written");
    packsync::config::load(&path).unwrap_or_else(|errors| {
        let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        panic!("packsync refuses the rendered config:\n{text}\n{errors:#?}")
    })
}

/// Values for a real site: its own volumes, the URLs in Secrets, a `ServiceMonitor`.
fn agent_values() -> Value {
    json!({
        "image": {"repository": "registry.example/packsync"},
        "volumes": {
            "packs": {"nfs": {"server": "nfs1.example", "path": "/export/st2/packs"}},
            "virtualenvs": {"persistentVolumeClaim": {"claimName": "st2-virtualenvs"}},
            "configs": {"persistentVolumeClaim": {"claimName": "st2-configs"}},
            "repos": {"nfs": {"server": "nfs1.example", "path": "/volspoms2/repos"}},
            "wheels": {"nfs": {"server": "nfs1.example", "path": "/volspoms2/wheels"}},
        },
        "state": {"mongodb": {
            "existingSecret": "st2-mongodb-packsync",
            "key": "uri",
            "database": "st2",
            "timeout": "20s",
        }},
        "messaging": {"rabbitmq": {"existingSecret": "st2-rabbitmq-packsync", "exchange": "ops"}},
        "st2": {
            "releaseName": "st2",
            "namespace": "automation",
            "apiKeySecret": {"name": "st2-packsync-apikey", "key": "key"},
        },
        "serviceMonitor": {"enabled": true, "interval": "1m", "labels": {"release": "prom"}},
        "config": {
            "agent": {"host": "st2-k8s", "keep_releases": 5},
            "pack": [{
                "name": "clush",
                "source": "/mnt/repos/clush",
                "version": ">=1.8, <2",
                "config": {"fanout": 64, "hosts": ["n1", "n2"]},
            }],
        },
    })
}

/// The probes on `/healthz`, on the port of `metrics_listen`, with the defaults' tolerances.
fn assert_probes_on_metrics(container: &Value) {
    assert_eq!(container["ports"][0]["containerPort"], 9101);
    for (probe, period, failures) in [
        ("startupProbe", 10, 90),
        ("readinessProbe", 10, 3),
        ("livenessProbe", 60, 30),
    ] {
        let probe = &container[probe];
        assert_eq!(
            probe["httpGet"],
            json!({"path": "/healthz", "port": "metrics"})
        );
        assert_eq!(probe["periodSeconds"], period);
        assert_eq!(probe["failureThreshold"], failures);
    }
}

/// Non-root, read-only root, no privileges, no token, time to finish a step.
fn assert_locked_down(chart: &Rendered) {
    let container = chart.container();
    let pod = &chart.pod()["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({
            "runAsNonRoot": true,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        })
    );
    assert_eq!(
        container["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "privileged": false,
            "capabilities": {"drop": ["ALL"]},
        })
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["terminationGracePeriodSeconds"], 900);
    assert_eq!(container["resources"]["limits"]["memory"], "1Gi");
}

/// packsync's `state_dir`, on the virtualenvs volume: StackStorm's pods mount that volume at the
/// same path, so the absolute links into the `state_dir` resolve there with no extra mount.
const STATE_DIR: &str = "/opt/stackstorm/virtualenvs/.packsync";

/// The `state_dir` is on the read-write virtualenvs volume: no claim or volume of its own.
fn assert_state_on_virtualenvs(chart: &Rendered, config: &SiteConfig) {
    assert_eq!(config.agent.state_dir, Path::new(STATE_DIR));
    assert_eq!(
        config.agent.state_dir.parent(),
        Some(config.stackstorm.virtualenvs_dir.as_path()),
        "on the virtualenvs volume"
    );
    assert!(
        !chart
            .kinds()
            .iter()
            .any(|kind| kind.starts_with("PersistentVolumeClaim/")),
        "no claim of the chart's: {:?}",
        chart.kinds()
    );
    assert!(!chart.volumes().contains_key("state"));
    let mounts = chart.mounts();
    assert!(!mounts.contains_key("state"));
    for (volume, path) in [
        ("packs", "/opt/stackstorm/packs"),
        ("virtualenvs", "/opt/stackstorm/virtualenvs"),
    ] {
        assert_eq!(mounts[volume], (path.to_string(), false), "{volume}");
    }
}

/// The chart's own keys of the site config: refused in `config` by the schema.
const OWNED_KEYS: [&str; 8] = [
    "state",
    "messaging",
    "agent.state_dir",
    "agent.metrics_listen",
    "stackstorm.packs_dir",
    "stackstorm.virtualenvs_dir",
    "stackstorm.configs_dir",
    "mirror.path",
];

/// Site config keys the chart refuses in `config` for good: `[[runner]]` installs into
/// StackStorm's own site-packages and restarts st2actionrunner, which the agent's pod cannot do
/// to StackStorm's pods (runners belong in the st2 images); `[fleet]` coordinates hosts that
/// each keep their own copy of the packs, while on Kubernetes one agent switches the volumes
/// every st2 replica mounts (and `health` is what a fleet's waves wait for).
const REFUSED_KEYS: [&str; 3] = ["runner", "fleet", "stackstorm.health"];

/// `struct name -> [key]` of the serde structs of `src/config/raw.rs`, `rename`s applied.
fn raw_config_keys() -> BTreeMap<String, Vec<String>> {
    let source = fs_err::read_to_string(repo_path("src/config/raw.rs")).expect("raw.rs");
    let strukt = regex::Regex::new(r"^pub\(super\) struct (\w+)").expect("a regex");
    let field = regex::Regex::new(r"^\s+pub\(super\) (\w+):").expect("a regex");
    let rename = regex::Regex::new(r#"rename = "(\w+)""#).expect("a regex");
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut current, mut renamed) = (None, None);
    for line in source.lines() {
        if let Some(c) = strukt.captures(line) {
            current = Some(c[1].to_string());
        } else if let Some(c) = rename.captures(line) {
            renamed = Some(c[1].to_string());
        } else if let (Some(c), Some(current)) = (field.captures(line), &current) {
            let key = renamed.take().unwrap_or_else(|| c[1].to_string());
            keys.entry(current.clone()).or_default().push(key);
        }
    }
    keys
}

#[test]
fn chart_schema_knows_every_site_config_key() {
    let schema: Value = serde_json::from_str(
        &fs_err::read_to_string(repo_path("charts/packsync/values.schema.json"))
            .expect("values.schema.json"),
    )
    .expect("the schema is JSON");
    let config = &schema["properties"]["config"];
    let raw = raw_config_keys();
    for (strukt, path) in [
        ("RawSiteConfig", ""),
        ("RawAgent", "agent"),
        ("RawStackStorm", "stackstorm"),
        ("RawMirror", "mirror"),
        ("RawWatch", "watch"),
        ("RawSchedule", "schedule"),
        ("RawPack", "pack"),
    ] {
        let mut table = config;
        if !path.is_empty() {
            table = &table["properties"][path];
            if table["type"] == "array" {
                table = &table["items"];
            }
        }
        assert_eq!(table["additionalProperties"], false, "config.{path}");
        let mut in_schema: Vec<String> = table["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("config.{path} in the schema"))
            .keys()
            .cloned()
            .collect();
        let owned =
            OWNED_KEYS
                .iter()
                .chain(&REFUSED_KEYS)
                .filter_map(|key| match key.split_once('.') {
                    Some((table, key)) if table == path => Some(key),
                    None if path.is_empty() => Some(key),
                    _ => None,
                });
        in_schema.extend(owned.map(ToString::to_string));
        in_schema.sort();
        let mut in_raw = raw[strukt].clone();
        in_raw.sort();
        assert_eq!(
            in_schema, in_raw,
            "config.{path} of values.schema.json (plus the chart's own and refused keys) \
             against {strukt} of src/config/raw.rs: add new site config keys to the schema"
        );
    }
    for key in REFUSED_KEYS {
        assert!(config["properties"].get(key).is_none(), "config.{key}");
    }
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart = packsync::yaml::load(
        &fs_err::read(repo_path("charts/packsync/Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(chart["apiVersion"].as_str(), Some("v2"));
}

/// Issue 15: the chart's hook also purges through st2api, with the `ST2_*` variables it reads.
#[test]
fn chart_hook_is_the_purge_commands_too() {
    let chart = render(&json!({}));
    let config = load_site_config(chart.site_config(), &[]);
    let (registered, purge) = config.stackstorm.purging().expect("registered and purge");
    assert_eq!(
        registered.0,
        [
            "python3",
            "/etc/packsync/hooks/st2_register.py",
            "registered",
            "{pack}"
        ]
    );
    assert_eq!(
        purge.0,
        [
            "python3",
            "/etc/packsync/hooks/st2_register.py",
            "purge",
            "{kind}",
            "{ref}"
        ]
    );
    assert_eq!(
        config.stackstorm.env,
        ["ST2_API_URL", "ST2_API_KEY", "ST2_REGISTER_TIMEOUT"]
    );
}

#[test]
fn chart_defaults_render_one_agent_whose_config_packsync_loads() {
    let chart = render(&json!({}));
    assert_eq!(
        chart.kinds(),
        [
            "ConfigMap/packsync",
            "ConfigMap/packsync-hooks",
            "Deployment/packsync",
            "Service/packsync",
            "ServiceAccount/packsync",
        ]
    );
    let deployment = chart.get("Deployment", "packsync");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}));

    let container = chart.container();
    assert_eq!(container["image"], "packsync:0.1.0");
    assert_eq!(container["command"], json!(["/usr/local/bin/packsync"]));
    assert_eq!(container["args"], json!(["run", "--log-format", "json"]));
    assert_eq!(
        chart.env("PACKSYNC_CONFIG").expect("PACKSYNC_CONFIG")["value"],
        "/etc/packsync/packsync.toml"
    );
    assert_eq!(
        chart.env("ST2_API_URL").expect("ST2_API_URL")["value"],
        "http://stackstorm-st2api:9101"
    );
    assert_eq!(
        chart.env("ST2_API_KEY").expect("ST2_API_KEY")["valueFrom"],
        json!({"secretKeyRef": {"name": "packsync-st2-api-key", "key": "apiKey"}})
    );
    assert_eq!(
        chart.mounts(),
        mounts(&[
            ("config", "/etc/packsync/packsync.toml", true),
            ("hooks", "/etc/packsync/hooks", true),
            ("packs", "/opt/stackstorm/packs", false),
            ("virtualenvs", "/opt/stackstorm/virtualenvs", false),
            ("repos", "/mnt/repos", true),
            ("wheels", "/mnt/wheels", true),
            ("tmp", "/tmp", false),
        ]),
        "no configs volume by default"
    );
    let volumes = chart.volumes();
    assert_eq!(
        volumes["packs"]["persistentVolumeClaim"]["claimName"],
        "pvc-st2-packs"
    );
    assert_eq!(
        volumes["virtualenvs"]["persistentVolumeClaim"]["claimName"],
        "pvc-st2-virtualenvs"
    );
    assert_eq!(volumes["tmp"]["emptyDir"], json!({"sizeLimit": "2Gi"}));

    assert_probes_on_metrics(container);
    assert_locked_down(&chart);

    let service = chart.get("Service", "packsync");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "metrics", "port": 9101, "targetPort": "metrics", "protocol": "TCP"}])
    );
    // The hook shipped is the chart's file, and the config runs it.
    assert_eq!(
        chart.get("ConfigMap", "packsync-hooks")["data"]["st2_register.py"],
        fs_err::read_to_string(repo_path(HOOK)).expect("the hook")
    );
    let config = load_site_config(chart.site_config(), &[]);
    assert_eq!(
        config
            .stackstorm
            .register
            .as_ref()
            .expect("a register command")
            .0,
        ["python3", "/etc/packsync/hooks/st2_register.py", "{pack}"]
    );
    assert_eq!(
        config.agent.host.as_deref(),
        Some("packsync"),
        "not the pod's name"
    );
    assert_state_on_virtualenvs(&chart, &config);
    assert_eq!(
        config.agent.metrics_listen,
        Some("0.0.0.0:9101".parse().expect("an address"))
    );
    assert_eq!(config.mirror.path, Path::new("/mnt/wheels"));
    // The image is built FROM the st2 image: the virtualenvs use StackStorm's own interpreter,
    // packsync's default, which exists in every st2 pod.
    assert!(
        !chart.site_config().contains("python ="),
        "no python key:\n{}",
        chart.site_config()
    );
    assert_eq!(
        config.stackstorm.python,
        Path::new("/opt/stackstorm/st2/bin/python3")
    );
    assert!(
        matches!(config.state, StateConfig::File),
        "the embedded store"
    );
    assert!(config.messaging.is_none());
    assert!(config.packs.is_empty());
}

#[test]
fn chart_agent_values_mount_the_site_volumes_and_the_url_secrets() {
    let chart = render(&agent_values());
    assert_eq!(
        chart.kinds(),
        [
            "ConfigMap/packsync",
            "ConfigMap/packsync-hooks",
            "Deployment/packsync",
            "Service/packsync",
            "ServiceAccount/packsync",
            "ServiceMonitor/packsync",
        ],
        "no PVC: the state_dir is on the virtualenvs volume"
    );
    assert_eq!(
        chart.mounts(),
        mounts(&[
            ("config", "/etc/packsync/packsync.toml", true),
            ("hooks", "/etc/packsync/hooks", true),
            ("mongodb-url", "/etc/packsync/secrets/mongodb", true),
            ("rabbitmq-url", "/etc/packsync/secrets/rabbitmq", true),
            ("packs", "/opt/stackstorm/packs", false),
            ("virtualenvs", "/opt/stackstorm/virtualenvs", false),
            ("configs", "/opt/stackstorm/configs", false),
            ("repos", "/mnt/repos", true),
            ("wheels", "/mnt/wheels", true),
            ("tmp", "/tmp", false),
        ])
    );
    let volumes = chart.volumes();
    assert_eq!(
        volumes["packs"],
        json!({"name": "packs", "nfs": {"server": "nfs1.example", "path": "/export/st2/packs"}}),
        "the source given, not merged with the default claim"
    );
    assert_eq!(
        volumes["configs"]["persistentVolumeClaim"]["claimName"],
        "st2-configs"
    );
    assert!(!volumes.contains_key("state"));
    assert_eq!(
        volumes["mongodb-url"]["secret"],
        json!({
            "secretName": "st2-mongodb-packsync",
            "defaultMode": 0o440,
            "items": [{"key": "uri", "path": "uri"}],
        })
    );
    assert_eq!(
        volumes["rabbitmq-url"]["secret"]["secretName"],
        "st2-rabbitmq-packsync"
    );
    assert_eq!(
        chart.env("ST2_API_URL").expect("ST2_API_URL")["value"],
        "http://st2-st2api.automation.svc:9101"
    );
    assert_eq!(
        chart.container()["image"],
        "registry.example/packsync:0.1.0"
    );

    let monitor = chart.get("ServiceMonitor", "packsync");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "interval": "1m", "scrapeTimeout": "10s"}])
    );
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        chart.get("Service", "packsync")["spec"]["selector"]
    );
}

#[test]
fn chart_agent_values_give_packsync_the_urls_as_files_it_reads() {
    let chart = render(&agent_values());
    // The URLs are files; the ConfigMap holds no password.
    let text = chart.site_config();
    for line in [
        "url_file = \"/etc/packsync/secrets/mongodb/uri\"",
        "url_file = \"/etc/packsync/secrets/rabbitmq/url\"",
    ] {
        assert!(text.lines().any(|l| l.trim() == line), "{line} in:\n{text}");
    }
    assert!(
        !text.contains("mongodb://") && !text.contains("amqp://"),
        "{text}"
    );
    let config = load_site_config(
        text,
        &[
            (
                "mongodb/uri",
                "mongodb://packsync:pw@st2-mongodb-headless:27017/st2?authSource=admin\n",
            ),
            ("rabbitmq/url", "amqp://packsync:pw@st2-rabbitmq:5672/\n"),
        ],
    );
    assert_state_on_virtualenvs(&chart, &config);
    let StateConfig::MongoDb(mongo) = &config.state else {
        panic!("[state] is MongoDB: {:?}", config.state)
    };
    assert_eq!(
        mongo.url.expose(),
        "mongodb://packsync:pw@st2-mongodb-headless:27017/st2?authSource=admin"
    );
    assert_eq!(mongo.database, "st2");
    assert_eq!(mongo.timeout, Duration::from_secs(20));
    let messaging = config.messaging.expect("[messaging]");
    assert_eq!(messaging.exchange, "ops");
    assert_eq!(config.agent.host.as_deref(), Some("st2-k8s"));
    assert_eq!(config.agent.keep_releases, 5, "an integer, not 5.0");
    assert_eq!(config.packs.len(), 1);
    assert_eq!(
        config.packs[0].values["fanout"],
        json!(64),
        "pack config integers stay integers"
    );
}

#[test]
fn chart_config_change_rolls_the_pod_and_keeps_the_hook() {
    let chart = render(&agent_values());
    let checksums = |chart: &Rendered| chart.pod()["metadata"]["annotations"].clone();
    let mut changed = agent_values();
    changed["config"]["agent"]["keep_releases"] = json!(4);
    let after = render(&changed);
    assert_ne!(
        checksums(&chart)["checksum/config"],
        checksums(&after)["checksum/config"]
    );
    assert_eq!(
        checksums(&chart)["checksum/hooks"],
        checksums(&after)["checksum/hooks"]
    );
}

#[test]
fn chart_cronjob_values_run_plain_apply_with_no_service_or_probes() {
    let chart = render(&json!({
        "mode": "cronjob",
        "cronjob": {"schedule": "*/10 * * * *", "timeZone": "Europe/Paris"},
        "serviceMonitor": {"enabled": true},
        "st2": {"register": {"enabled": false}},
        "config": {"stackstorm": {"register": ["/usr/local/bin/st2-register", "{pack}"]}},
    }));
    assert_eq!(
        chart.kinds(),
        [
            "ConfigMap/packsync",
            "CronJob/packsync",
            "ServiceAccount/packsync",
        ],
        "no Deployment, Service, ServiceMonitor, nor hook without registration"
    );
    let cronjob = &chart.get("CronJob", "packsync")["spec"];
    assert_eq!(cronjob["schedule"], "*/10 * * * *");
    assert_eq!(cronjob["timeZone"], "Europe/Paris");
    assert_eq!(cronjob["concurrencyPolicy"], "Forbid");
    assert_eq!(cronjob["jobTemplate"]["spec"]["backoffLimit"], 0);
    assert_eq!(chart.pod()["spec"]["restartPolicy"], "Never");

    let container = chart.container();
    assert_eq!(container["command"], json!(["/usr/local/bin/packsync"]));
    // Not --detailed-exitcodes: its 2 ("changes applied") would fail the Job.
    assert_eq!(container["args"], json!(["apply", "--log-format", "json"]));
    for absent in ["ports", "startupProbe", "readinessProbe", "livenessProbe"] {
        assert!(container.get(absent).is_none(), "{absent} in {container}");
    }
    assert!(chart.env("ST2_API_KEY").is_none());
    assert!(!chart.mounts().contains_key("hooks"));

    let config = load_site_config(chart.site_config(), &[]);
    assert_state_on_virtualenvs(&chart, &config);
    assert_eq!(config.agent.metrics_listen, None, "apply serves no metrics");
    assert_eq!(
        config.stackstorm.register.expect("the site's register").0,
        ["/usr/local/bin/st2-register", "{pack}"]
    );
}

/// The container's args, as strings.
fn args(chart: &Rendered) -> Vec<String> {
    chart.container()["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|arg| arg.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn chart_commands_are_ones_packsync_accepts() {
    let agent = args(&render(&json!({})));
    assert_exit(packsync(agent.iter().chain(&["--help".to_string()])), 0);

    let apply = args(&render(&json!({"mode": "cronjob"})));
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    // Exit 0 for changes applied as for nothing to do.
    assert_exit(site.cmd(&apply), 0);
    assert_exit(site.cmd(&apply), 0);
}

#[test]
fn chart_refuses_typos_and_keys_it_owns_naming_them() {
    for (values, expected) in [
        (
            json!({"serviceMonitor": {"enable": true}}),
            &["/serviceMonitor", "'enable'"][..],
        ),
        (json!({"mode": "daemon"}), &["/mode", "'agent', 'cronjob'"]),
        (json!({"volumes": {"pack": {}}}), &["/volumes", "'pack'"]),
        (
            json!({"config": {"agent": {"state_dir": "/srv/packsync"}}}),
            &["/config/agent", "'state_dir'"],
        ),
        (
            json!({"config": {"state": {"url": "mongodb://u:pw@db/"}}}),
            &["/config", "'state'"],
        ),
        (
            json!({"config": {"runner": [{"name": "st2-http-runner"}]}}),
            &["/config", "'runner'"],
        ),
        (
            json!({"persistence": {"enabled": true}}),
            &["'persistence'"],
        ),
        (
            json!({"volumes": {"packs": {"nfs": {"server": "a", "path": "/p"}, "emptyDir": {}}}}),
            &["/volumes/packs"],
        ),
        (
            json!({"config": {"pack": [{"name": "clush", "source": "/mnt/repos/clush", "config": {"a": 1}}]}}),
            &["volumes.configs", "clush"],
        ),
        (
            json!({"config": {"stackstorm": {"register": ["true"]}}}),
            &["st2.register.enabled"],
        ),
    ] {
        let stderr = refused(&values);
        for part in expected {
            assert!(
                stderr.contains(part),
                "{values}: `{part}` not in the message:\n{stderr}"
            );
        }
    }
}

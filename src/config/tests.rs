use std::path::Path;

use super::validate::DEFAULT_VIRTUALENVS_DIR;
use super::*;

const MINIMAL: &str = r#"
[agent]
state_dir = "state"

[stackstorm]
packs_dir = "/opt/stackstorm/packs"
python = "python3"

[mirror]
path = "/srv/wheels"

[[pack]]
name = "clush"
source = "file:///srv/git/clush"
ref = "v1.8.1"
[pack.config]
fanout = 64
hosts = "node[1-10]"

[[pack]]
name = "slurm"
source = "../git/slurm"
version = ">=2.0, <3"
subdir = "packs/slurm"
enabled = false
"#;

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("/etc/packsync/site.toml"), text) {
        Ok(_) => panic!("expected errors"),
        Err(ConfigErrors(errors)) => errors
            .iter()
            .map(|err| {
                format!(
                    "{}: {err}",
                    err.location().expect("validation errors have one")
                )
            })
            .collect(),
    }
}

#[test]
fn minimal_config_resolves_paths_against_its_folder() {
    let config = parse(Path::new("/etc/packsync/site.toml"), MINIMAL).unwrap();
    assert_eq!(config.agent.state_dir, Path::new("/etc/packsync/state"));
    assert_eq!(config.agent.prune, Prune::Off);
    assert_eq!(config.stackstorm.python, Path::new("python3"));
    assert_eq!(
        config.stackstorm.virtualenvs_dir,
        Path::new(DEFAULT_VIRTUALENVS_DIR)
    );
    assert_eq!(config.mirror.path, Path::new("/srv/wheels"));
    let [clush, slurm] = config.packs.as_slice() else {
        panic!("two packs")
    };
    assert_eq!(clush.repo, Path::new("/srv/git/clush"));
    assert_eq!(clush.selector, RefSelector::Ref("v1.8.1".into()));
    assert_eq!(clush.values["fanout"], serde_json::json!(64));
    assert_eq!(clush.value_locations["hosts"].line, 18);
    assert!(clush.enabled);
    assert_eq!(slurm.repo, Path::new("/etc/git/slurm"));
    assert_eq!(slurm.subdir.as_deref(), Some(Path::new("packs/slurm")));
    assert!(matches!(slurm.selector, RefSelector::Version(_)));
    assert!(!slurm.enabled);
}

#[test]
fn unknown_keys_are_errors_with_their_position() {
    let text = MINIMAL.replace("[agent]\n", "[agent]\nstate_dri = \"x\"\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("/etc/packsync/site.toml:3:1: unknown field `state_dri`"),
        "{errors:?}"
    );
}

#[test]
fn syntax_errors_point_at_the_line() {
    let errors = errors("[agent\n");
    assert!(
        errors[0].starts_with("/etc/packsync/site.toml:1:"),
        "{errors:?}"
    );
}

#[test]
fn every_semantic_error_is_reported() {
    let text = r#"
[mirror]
path = "/srv/wheels"

[stackstorm]
register = ["st2-register-content", "--register-pack", "{pak_dir}"]
test = []

[[pack]]
name = "Clush"
source = "https://github.com/example/clush"

[[pack]]
name = "slurm"
source = "/srv/git/slurm"
ref = "main"
version = ">=1"

[[pack]]
name = "slurm"
source = "/srv/git/slurm2"
subdir = "../outside"

[[pack]]
name = "diskless"
source = "/srv/git/diskless"
version = "not a range"
"#;
    let errors = errors(text);
    let expected = [
        ":6:",
        "Unknown placeholder `{pak_dir}` in `register`",
        ":7:",
        "`test` needs a program to run",
        ":10:",
        "Pack name `Clush` must match",
        ":11:",
        "is a remote URL",
        ":17:",
        "`ref` and `version` are both set",
        ":22:",
        "`subdir` `../outside` must be a relative path inside the repo",
        ":27:",
        "`version` is not a semver range",
    ];
    assert_eq!(errors.len(), expected.len() / 2, "{errors:#?}");
    for (error, pair) in errors.iter().zip(expected.chunks(2)) {
        assert!(
            error.contains(pair[0]) && error.contains(pair[1]),
            "{error} !~ {pair:?}"
        );
    }
}

#[test]
fn duplicate_names_point_at_both_entries() {
    let text = r#"
[mirror]
path = "/w"
[[pack]]
name = "clush"
source = "/a"
[[pack]]
name = "clush"
source = "/b"
"#;
    let errors = errors(text);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains(
            ":8:8: Pack `clush` is declared twice (first at /etc/packsync/site.toml:5:8)"
        ),
        "{errors:?}"
    );
}

#[test]
fn missing_mirror_is_an_error_with_a_hint() {
    let err = parse(Path::new("/s.toml"), "").unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert!(err.0[0].hint().unwrap().contains("[mirror]"));
}

#[test]
fn unsupported_version_is_refused() {
    let errors = errors("version = 2\n[mirror]\npath = \"/w\"\n");
    assert!(errors[0].contains("Unsupported site config `version = 2`"));
}

#[test]
fn a_relative_config_path_gives_absolute_paths() {
    // StackStorm follows packsync's links from its own working directory.
    let config = load(Path::new("examples/quickstart/packsync.toml")).unwrap();
    assert!(config.path.is_absolute());
    assert!(config.agent.state_dir.is_absolute());
    assert!(config.stackstorm.packs_dir.is_absolute());
    assert!(config.mirror.path.is_absolute());
}

#[test]
fn without_a_state_section_the_state_is_embedded() {
    let config = parse(Path::new("/etc/packsync/site.toml"), MINIMAL).unwrap();
    assert!(matches!(config.state, StateConfig::File));
}

#[test]
fn the_state_database_comes_from_the_section_then_the_url_then_st2() {
    let database = |state: &str| {
        let text = format!("{MINIMAL}\n[state]\n{state}\n");
        match parse(Path::new("/etc/packsync/site.toml"), &text)
            .unwrap()
            .state
        {
            StateConfig::MongoDb(mongo) => mongo,
            StateConfig::File => panic!("a [state] section is MongoDB"),
        }
    };
    let mongo = database(r#"url = "mongodb://packsync:pw@db1:27017,db2:27017/?authSource=admin""#);
    assert_eq!(mongo.database, "st2");
    assert_eq!(mongo.collection_prefix, "packsync_");
    assert_eq!(mongo.timeout, Duration::from_secs(10));
    assert_eq!(
        format!("{:?}", mongo.url),
        "SecretUrl(mongodb://packsync:***@db1:27017,db2:27017/?authSource=admin)"
    );
    assert_eq!(database(r#"url = "mongodb://db1/ops""#).database, "ops");
    let mongo = database(
        "url = \"mongodb://db1/ops\"\ndatabase = \"st2\"\ncollection_prefix = \"ps_\"\n\
         timeout = \"1m 30s\"",
    );
    assert_eq!(mongo.database, "st2");
    assert_eq!(mongo.collection_prefix, "ps_");
    assert_eq!(mongo.timeout, Duration::from_secs(90));
}

#[test]
fn state_errors_point_at_the_key_and_never_show_the_password() {
    let text = format!(
        "{MINIMAL}\n[state]\nurl = \"http://packsync:pw-never-shown@db1/\"\ndatabase = \"st 2\"\n\
         collection_prefix = \"\"\ntimeout = \"soon\"\n"
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0]
            .starts_with("/etc/packsync/site.toml:28:7: `url` is not a MongoDB connection string"),
        "{errors:#?}"
    );
    assert!(
        errors[1]
            .starts_with("/etc/packsync/site.toml:29:12: `database` `st 2` is not a valid name"),
        "{errors:#?}"
    );
    assert!(
        errors[2].contains("`collection_prefix` `` is not a valid name"),
        "{errors:#?}"
    );
    assert!(
        errors[3].contains("`timeout` `soon` is not a positive duration"),
        "{errors:#?}"
    );
    assert!(!errors.concat().contains("pw-never-shown"));
}

#[test]
fn the_installer_is_pip_unless_uv_is_chosen() {
    let parsed = |extra: &str| {
        parse(
            Path::new("/etc/packsync/site.toml"),
            &MINIMAL.replace(
                "path = \"/srv/wheels\"",
                &format!("path = \"/srv/wheels\"\n{extra}"),
            ),
        )
        .expect("a valid config")
        .mirror
        .installer
    };
    assert_eq!(parsed(""), Installer::Pip);
    assert_eq!(parsed("installer = \"pip\""), Installer::Pip);
    assert_eq!(
        parsed("installer = \"uv\""),
        Installer::Uv(PathBuf::from("uv"))
    );
    assert_eq!(
        parsed("installer = \"uv\"\nuv = \"bin/uv\""),
        Installer::Uv(PathBuf::from("/etc/packsync/bin/uv"))
    );
    assert_eq!(
        errors(&MINIMAL.replace(
            "path = \"/srv/wheels\"",
            "path = \"/srv/wheels\"\ninstaller = \"poetry\"\nuv = \"/usr/bin/uv\"",
        )),
        ["/etc/packsync/site.toml:11:13: Unknown installer `poetry`"]
    );
    let uv_alone = errors(&MINIMAL.replace(
        "path = \"/srv/wheels\"",
        "path = \"/srv/wheels\"\nuv = \"/usr/bin/uv\"",
    ));
    assert_eq!(
        uv_alone,
        ["/etc/packsync/site.toml:11:6: `uv` is set but `installer` is not \"uv\""]
    );
}

#[test]
fn runners_need_st2_python_a_specifier_and_a_source_for_a_ref() {
    let config = parse(
        Path::new("/etc/packsync/site.toml"),
        &format!(
            "{}\n[[runner]]\nname = \"clush_runner\"\nversion = \"==1.2.*\"\n\n\
             [[runner]]\nname = \"milkcheck_runner\"\nsource = \"../runners/milkcheck\"\n\
             ref = \"v2\"\n",
            MINIMAL.replace(
                "python = \"python3\"",
                "python = \"python3\"\nst2_python = \"/opt/stackstorm/st2/bin/python\""
            )
        ),
    )
    .expect("a valid config");
    let [clush, milkcheck] = config.runners.as_slice() else {
        panic!("two runners")
    };
    assert_eq!(clush.requirement.to_string(), "clush-runner==1.2.*");
    assert_eq!(clush.source, None);
    assert_eq!(
        milkcheck.source,
        Some(RunnerSource {
            repo: PathBuf::from("/etc/runners/milkcheck"),
            selector: RefSelector::Ref("v2".into()),
            verify: None,
        })
    );

    let errors = errors(&format!(
        "{MINIMAL}\n[[runner]]\nname = \"clush_runner\"\nversion = \"1.2\"\n\n\
         [[runner]]\nname = \"x\"\nref = \"main\"\n\n[[runner]]\nname = \"ok_runner\"\n\n\
         [[runner]]\nname = \"ok_runner\"\n"
    ));
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].starts_with(
            "/etc/packsync/site.toml:29:11: `version` `1.2` is not a PEP 440 version specifier"
        ),
        "{errors:#?}"
    );
    assert!(
        errors[1].starts_with("/etc/packsync/site.toml:33:7: `ref` needs `source`"),
        "{errors:#?}"
    );
    assert!(
        errors[2].contains("Runner `ok-runner` is declared twice"),
        "{errors:#?}"
    );
    assert!(
        errors[3].contains("Runners need `[stackstorm] st2_python`"),
        "{errors:#?}"
    );
}

#[test]
fn the_reference_site_configs_are_valid() {
    for (name, text) in [
        (
            "site-config/packsync.toml",
            include_str!("../../site-config/packsync.toml"),
        ),
        (
            "site-config/kubernetes.toml",
            include_str!("../../site-config/kubernetes.toml"),
        ),
    ] {
        // The Secrets the Kubernetes layout reads its URLs from, as the chart mounts them.
        let secrets = tempfile::tempdir().unwrap();
        for (file, url) in [
            (
                "mongodb/url",
                "mongodb://packsync:pw@st2-mongodb-headless:27017/st2",
            ),
            ("rabbitmq/url", "amqp://packsync:pw@st2-rabbitmq:5672/"),
        ] {
            let path = secrets.path().join(file);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, url).unwrap();
        }
        let text = text.replace(
            "/etc/packsync/secrets/",
            &format!("{}/", secrets.path().display()),
        );
        if let Err(errors) = parse(Path::new("/etc/packsync/packsync.toml"), &text) {
            let messages: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            panic!("{name}: {messages:#?}");
        }
    }
}

#[test]
fn connection_urls_can_be_read_from_files_that_keep_the_password_out_of_the_config() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("mongodb-url"),
        "mongodb://packsync:pw-from-secret@db1:27017/ops?authSource=admin\n",
    )
    .unwrap();
    fs_err::write(
        dir.path().join("amqp-url"),
        "amqp://packsync:pw@mq1:5672/st2\n",
    )
    .unwrap();
    let text = format!(
        "{MINIMAL}\n[state]\nurl_file = \"mongodb-url\"\n\n[messaging]\nurl_file = \"{}\"\n",
        dir.path().join("amqp-url").display()
    );
    let config = parse(&dir.path().join("site.toml"), &text).unwrap();
    let StateConfig::MongoDb(mongo) = config.state else {
        panic!("a [state] section is MongoDB")
    };
    assert_eq!(
        mongo.url.expose(),
        "mongodb://packsync:pw-from-secret@db1:27017/ops?authSource=admin",
        "relative to the config's folder, the newline trimmed"
    );
    assert_eq!(
        mongo.database, "ops",
        "the database named in the file's URL"
    );
    assert_eq!(
        config.messaging.unwrap().url.expose(),
        "amqp://packsync:pw@mq1:5672/st2"
    );
}

#[test]
fn a_connection_url_is_in_exactly_one_place_and_its_file_must_be_readable_and_valid() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("bad-url"),
        "http://packsync:pw-never-shown@db1/\n",
    )
    .unwrap();
    let config = |sections: &str| {
        let path = dir.path().join("site.toml");
        match parse(&path, &format!("{MINIMAL}\n{sections}")) {
            Ok(_) => panic!("expected errors"),
            Err(ConfigErrors(errors)) => errors
                .iter()
                .map(|err| format!("{}: {err}", err.location().expect("located").line))
                .collect::<Vec<_>>(),
        }
    };
    let errors = config(
        "[state]\ndatabase = \"st2\"\n\n[messaging]\nurl = \"amqp://mq1/\"\nurl_file = \"x\"\n",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0], "27: `[state]` needs `url` or `url_file`");
    assert_eq!(errors[1], "31: `[messaging]` has both `url` and `url_file`");

    let errors =
        config("[state]\nurl_file = \"missing-url\"\n\n[messaging]\nurl_file = \"bad-url\"\n");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("28: Cannot read `url_file`: "),
        "{errors:#?}"
    );
    assert!(
        errors[0].contains("missing-url"),
        "the file is named: {errors:#?}"
    );
    assert!(
        errors[1].starts_with(&format!(
            "31: The URL in `{}` is not an AMQP URL",
            dir.path().join("bad-url").display()
        )),
        "{errors:#?}"
    );
    assert!(!errors.concat().contains("pw-never-shown"));
}

#[test]
fn the_watch_mode_is_auto_unless_chosen() {
    let mode = |extra: &str| {
        parse(
            Path::new("/etc/packsync/site.toml"),
            &format!("{MINIMAL}\n{extra}"),
        )
        .unwrap()
        .watch
        .mode
    };
    assert_eq!(mode(""), WatchMode::Auto);
    assert_eq!(mode("[watch]\nmode = \"poll\"\n"), WatchMode::Poll);
    assert_eq!(mode("[watch]\nmode = \"notify\"\n"), WatchMode::Notify);
    let errors = errors(&format!("{MINIMAL}\n[watch]\nmode = \"inotify\"\n"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("Unknown watch mode `inotify`"),
        "{errors:#?}"
    );
}

#[test]
fn a_fleet_lists_its_hosts_once_on_the_mongodb_store_with_a_quorum_it_can_reach() {
    let fleet = |section: &str| {
        format!("{MINIMAL}\n[state]\nurl = \"mongodb://db1/st2\"\n\n[fleet]\n{section}\n")
    };
    let config = parse(
        Path::new("/etc/packsync/site.toml"),
        &fleet("name = \"prod\"\nhosts = [\"st2-1.example.org\", \"st2-2\"]"),
    )
    .unwrap();
    let parsed = config.fleet.unwrap();
    assert_eq!(parsed.hosts, ["st2-1.example.org", "st2-2"]);
    assert_eq!(parsed.quorum, 2, "every host, unless said");
    assert_eq!(parsed.prepare_timeout, Duration::from_mins(10));
    assert_eq!(parsed.lease_ttl, Duration::from_secs(30));

    let found = errors(&fleet(
        "name = \"prod\"\nhosts = [\"a\", \"a\", \"b c\"]\nquorum = 3\nprepare_timeout = \"never\"",
    ));
    assert_eq!(
        found,
        [
            "/etc/packsync/site.toml:32:15: Host `a` is listed twice",
            "/etc/packsync/site.toml:32:20: `hosts` `b c` is not a host name",
            "/etc/packsync/site.toml:33:10: `quorum` 3 is more than the 2 hosts of the fleet",
            "/etc/packsync/site.toml:34:19: `prepare_timeout` `never` is not a positive duration",
        ]
    );
    let found = errors(&format!(
        "{MINIMAL}\n[fleet]\nname = \"prod\"\nhosts = [\"a\"]\n"
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("`[fleet]` needs the MongoDB state store"),
        "{found:?}"
    );
}

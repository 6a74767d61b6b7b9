use keygate_policy_sdk::Input;

use super::Rules;

const ALICE: &str = include_str!("../../testdata/alice.pub");
const BOB: &str = include_str!("../../testdata/bob.pub");

fn input(name: &str, text: &str) -> Input {
    Input {
        name: name.into(),
        data: text.as_bytes().to_vec(),
    }
}

fn rules(path: &str, text: &str) -> Input {
    input(&format!("policy-input:{path}"), text)
}

fn load_err(inputs: &[Input]) -> String {
    match Rules::load(inputs) {
        Ok(_) => panic!("the load should fail"),
        Err(e) => e,
    }
}

#[test]
fn summary_names_what_was_loaded() {
    let text = format!(
        "keys:\n- key: {}\n  owner: alice\n  teams: [a]\nteams:\n  a: {{workers: [a-*]}}\n  b: {{workers: [b-*]}}\n",
        ALICE.trim()
    );
    let (rules, report) = Rules::load(&[rules("r.yml", &text)]).unwrap();
    assert_eq!(rules.keys.len(), 1);
    assert_eq!(
        report.summary,
        [
            "inputs: r.yml",
            "keys: 1 (0 global, 0 with an expiry)",
            "teams: 2",
            "  team a: 1 keys, workers a-*",
            "  team b: 0 keys, workers b-*",
        ]
    );
    assert_eq!(
        report.warnings,
        ["team b has no keys of its own; only global keys can act for it"]
    );
}

#[test]
fn rules_may_span_files() {
    let keys = format!(
        "keys:\n- key: {}\n  owner: alice\n  teams: [a]\n",
        ALICE.trim()
    );
    let teams = "teams:\n  a:\n    workers: [a-*]\n";
    let (rules, _) = Rules::load(&[rules("keys.yml", &keys), rules("teams.yml", teams)]).unwrap();
    assert_eq!((rules.keys.len(), rules.teams.len()), (1, 1));
}

#[test]
fn every_fault_is_listed_with_file_and_line() {
    let one = format!(
        "keys:\n- key: {}\n  owner: alice\n  teams: [a, nowhere]\n- key: ssh-ed25519 AAAA\n  owner: x\n  teams: [a]\nteams:\n  a: {{workers: [a-*]}}\n",
        ALICE.trim()
    );
    let two = format!(
        "keys:\n- key: {}\n  owner: alice again\n  teams: [a]\n- key: {}\n  owner: bob\n  expires: someday\n  teams: [a]\nteams:\n  a: {{workers: [b-*]}}\n",
        ALICE.trim(),
        BOB.trim()
    );
    let err = load_err(&[rules("one.yml", &one), rules("two.yml", &two)]);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.first(), Some(&"5 error(s) in the rules:"), "{err}");
    for expected in [
        "  one.yml:5: `key`: malformed key data; truncated key type",
        "  two.yml:7: `expires`: invalid date `someday`; expected YYYY-MM-DD",
        "  two.yml:10: team a is defined again (first at one.yml:9)",
        "  one.yml:4: team nowhere (key of alice) is not defined under `teams:`",
        "  two.yml:2: key SHA256:",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "{expected}\n{err}"
        );
    }
    assert!(
        err.contains("is listed again (first at one.yml:2)"),
        "{err}"
    );
}

#[test]
fn inputs_must_be_policy_inputs() {
    assert_eq!(
        load_err(&[]),
        "1 error(s) in the rules:\n  no rules given; pass the rules file with --policy-input FILE"
    );
    let err = load_err(&[input("authorized-keys:keys", ALICE)]);
    assert!(
        err.contains("input `authorized-keys:keys` is not for this policy"),
        "{err}"
    );
    let err = load_err(&[Input {
        name: "policy-input:bin".into(),
        data: vec![0xff, 0xfe],
    }]);
    assert!(err.ends_with("bin: not UTF-8 text"), "{err}");
    let err = load_err(&[rules("bad.yml", "keys: [\n")]);
    assert!(err.contains("\n  bad.yml:2: invalid YAML; "), "{err}");
}

#[test]
fn long_fault_lists_are_cut() {
    let mut text = String::from("keys:\n");
    for _ in 0..60 {
        text.push_str("- {key: nope, owner: x, teams: [a]}\n");
    }
    text.push_str("teams: {a: {workers: [a]}}\n");
    let err = load_err(&[rules("many.yml", &text)]);
    assert!(err.starts_with("60 error(s) in the rules:"), "{err}");
    assert!(err.ends_with("\n  ... and 10 more"), "{err}");
}

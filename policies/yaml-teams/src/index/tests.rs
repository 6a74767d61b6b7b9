use keygate_policy_sdk::testing::request;
use keygate_policy_sdk::{Action, Decision, Input};

use super::Index;

const A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINF4cdaNFl+Uhb11GUEeH5KI4Gh/LfZMvRQWJSlIRpai alice";
const B: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFN/3XPHEZ+oKm1bpe9AQ48QBWP/MmstLc42sxgoAh637+mxP8e6Q745v/zyb1Jxh5Jd0uRTjxHhmYZCv7QHaR8= bob";
const G: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCpW+bhhaHMZVf/W0NAVxVw1+4J5vfdu3Y3hC+EkmqIkgFPD+crN4H0LMfKWpfglWs65xWLKe9GErfG8RqLAGJ6Fo/N88KNlo9OVNF5PxGbTwWF+wJRMGq/IYLiohLR0XsqCt29VA/VGyAgS2Y55BtNCsDYRlYZN8QyXqzvAh9RSVv6FfImR3plbRtin5WARyNc2dJtG2itl/V6mn2dWpTDGPfen05NhsAKp/zDcUAZKiZZ+uU+QPD80b705bJtFZSr3Uz0NZLXHCXxBYBxD9RWpR4AJT5H5tcYZIXNNb6OZBlYZrQmdrnjJjxwncO+jv3fmEnCJEppY9Yx4XxLMEW7 global";
const UNKNOWN: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBL4x9E2wucvrta07Jr4v29CQeXhmJv8UGKzkCiqVs3KABAeZ6GjTCFCTK6e25zlkYBqteeIG6gqH6cUMvALJ1BCPeK3HzXf650lIbog/e8QkNPu0idriOOGTN7vj8bywxg==";

fn input(name: &str, text: &str) -> Input {
    Input {
        name: name.into(),
        data: text.as_bytes().to_vec(),
    }
}

fn yaml(text: &str) -> Input {
    input("team-authorized-keys-file:teams.yml", text)
}

fn load(inputs: Vec<Input>) -> Index {
    match Index::load(&inputs) {
        Ok((index, _)) => index,
        Err(e) => panic!("load failed: {e}"),
    }
}

fn load_err(inputs: Vec<Input>) -> String {
    match Index::load(&inputs) {
        Ok(_) => panic!("load should fail"),
        Err(e) => e,
    }
}

fn decide(index: &Index, action: Action, team: Option<&str>, key: &str) -> Decision {
    index.authorize(&request(action, team, key))
}

fn standard() -> Index {
    let teams =
        format!("- team: a\n  ssh_keys:\n  - {A}\n  - {B}\n- team: b\n  ssh_keys:\n  - {B}\n");
    load(vec![yaml(&teams), input("authorized-keys:global", G)])
}

#[test]
fn connect_needs_a_known_key() {
    let index = standard();
    for key in [A, B, G] {
        assert_eq!(decide(&index, Action::Connect, None, key), Decision::Allow);
    }
    let Decision::Deny(reason) = decide(&index, Action::Connect, None, UNKNOWN) else {
        panic!()
    };
    assert!(reason.contains("not authorized for any team"), "{reason}");
}

#[test]
fn team_keys_act_only_for_their_teams() {
    let index = standard();
    assert_eq!(
        decide(&index, Action::Register, Some("a"), A),
        Decision::Allow
    );
    let Decision::Deny(reason) = decide(&index, Action::Register, Some("b"), A) else {
        panic!()
    };
    assert!(reason.contains("not authorized for team b"), "{reason}");
    assert!(
        reason.contains("SHA256:XhsmKnjTODv6G7pX3V7ijhIwdvY9PvMc1xKfTGHDr5w"),
        "{reason}"
    );
    // A key in two teams works for both.
    assert_eq!(
        decide(&index, Action::Register, Some("a"), B),
        Decision::Allow
    );
    assert_eq!(decide(&index, Action::Land, Some("b"), B), Decision::Allow);
    // No team key acts for all teams, nor for a team that does not exist.
    assert!(!decide(&index, Action::Register, None, A).is_allow());
    assert!(!decide(&index, Action::Retire, Some("nope"), A).is_allow());
}

#[test]
fn global_keys_act_for_every_team_and_all_teams() {
    let index = standard();
    for team in [Some("a"), Some("b"), Some("unknown"), None] {
        assert_eq!(
            decide(&index, Action::Register, team, G),
            Decision::Allow,
            "{team:?}"
        );
        assert_eq!(
            decide(&index, Action::Delete, team, G),
            Decision::Allow,
            "{team:?}"
        );
    }
}

#[test]
fn unknown_actions_are_denied() {
    let index = standard();
    let action = Action::Other("teleport".into());
    assert!(!decide(&index, action, Some("a"), G).is_allow());
}

#[test]
fn per_team_authorized_keys_files() {
    let index = load(vec![
        input(
            "team-authorized-keys:a:/etc/keygate/a.keys",
            &format!("# team a\n{A}\n"),
        ),
        input("team-authorized-keys:b:/etc/keygate/b.keys", B),
    ]);
    assert_eq!(
        decide(&index, Action::Register, Some("a"), A),
        Decision::Allow
    );
    assert!(!decide(&index, Action::Register, Some("a"), B).is_allow());
    assert_eq!(
        decide(&index, Action::Register, Some("b"), B),
        Decision::Allow
    );
}

#[test]
fn key_options_apply_per_team() {
    let teams = format!(
        "- team: a\n  ssh_keys:\n  - from=\"10.0.0.0/8\" {A}\n- team: b\n  ssh_keys:\n  - expiry-time=\"19700102\" {A}\n"
    );
    let index = load(vec![yaml(&teams)]);
    // Test requests come from 127.0.0.1 at time 0.
    let Decision::Deny(reason) = decide(&index, Action::Register, Some("a"), A) else {
        panic!()
    };
    assert!(reason.contains("not in from="), "{reason}");
    assert_eq!(
        decide(&index, Action::Register, Some("b"), A),
        Decision::Allow
    );
    // Connect passes when any grant allows.
    assert_eq!(decide(&index, Action::Connect, None, A), Decision::Allow);
    let mut later = request(Action::Register, Some("b"), A);
    later.now = 86_400;
    let Decision::Deny(reason) = index.authorize(&later) else {
        panic!()
    };
    assert!(reason.contains("expired"), "{reason}");
}

#[test]
fn bad_inputs_name_file_and_line() {
    let cases: Vec<(String, &str)> = vec![
        (
            "- team: a\n  ssh_keys: [\n".into(),
            "teams.yml:3: invalid YAML",
        ),
        ("team: a\n".into(), "teams.yml:1: expected a list of teams"),
        (
            format!("- team: a\n  ssh_keys:\n  - {A}\n  - ssh-ed25519 AAAA\n"),
            "teams.yml:4: malformed key data",
        ),
        (
            format!("- team: a\n  ssh_keys:\n  - permitopen=\"x:1\" {A}\n"),
            "teams.yml:3: option `permitopen`",
        ),
        (
            format!("- team: \"\"\n  ssh_keys:\n  - {A}\n"),
            "teams.yml:1: empty team name",
        ),
        (
            format!("- team: a\n  ssh_key:\n  - {A}\n"),
            "teams.yml:2: unknown field `ssh_key`",
        ),
        (
            "- team: a\n  ssh_keys: oops\n".into(),
            "teams.yml:2: `ssh_keys` must be a list",
        ),
        ("- &x team: a\n".into(), "anchors are not supported"),
        (
            "- just a string\n".into(),
            "teams.yml:1: expected a team entry",
        ),
    ];
    for (text, expected) in cases {
        let err = load_err(vec![yaml(&text)]);
        assert!(
            err.contains(expected),
            "{text:?}: expected {expected:?} in {err}"
        );
    }
    let err = load_err(vec![input(
        "authorized-keys:/keys",
        &format!("{A}\nnot a key\n"),
    )]);
    assert!(err.contains("/keys:2: unknown key type `not`"), "{err}");
    let err = load_err(vec![input("mystery:x", "")]);
    assert!(err.contains("unknown input `mystery:x`"), "{err}");
}

#[test]
fn every_bad_line_is_reported() {
    let text = format!("- team: a\n  ssh_keys:\n  - bad1 x\n  - {A}\n  - bad2 y\n");
    let err = load_err(vec![yaml(&text)]);
    assert!(err.starts_with("2 error(s)"), "{err}");
    assert!(
        err.contains("teams.yml:3:") && err.contains("teams.yml:5:"),
        "{err}"
    );
}

#[test]
fn duplicates_merge_with_warnings() {
    let text =
        format!("- team: a\n  ssh_keys:\n  - {A}\n- team: a\n  ssh_keys:\n  - {B}\n  - {A}\n");
    let (index, report) = Index::load(&[yaml(&text)]).unwrap();
    assert_eq!(
        decide(&index, Action::Register, Some("a"), B),
        Decision::Allow
    );
    let warnings = report.warnings.join("\n");
    assert!(
        warnings.contains("teams.yml:4: team a is listed again (first at teams.yml:1)"),
        "{warnings}"
    );
    assert!(warnings.contains("teams.yml:7: key SHA256:XhsmKnjTODv6G7pX3V7ijhIwdvY9PvMc1xKfTGHDr5w repeats teams.yml:3"), "{warnings}");
}

#[test]
fn empty_inputs_load() {
    let (_, report) = Index::load(&[yaml("")]).unwrap();
    assert!(report.warnings.iter().any(|w| w.contains("no teams")));
    load(vec![yaml("[]"), input("authorized-keys:g", "")]);
}

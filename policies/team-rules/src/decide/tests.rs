use keygate_policy_sdk::testing::request;
use keygate_policy_sdk::{Action, Decision, Input, Request};

use crate::Rules;

const ALICE: &str = include_str!("../../testdata/alice.pub");
const BOB: &str = include_str!("../../testdata/bob.pub");
const CAROL: &str = include_str!("../../testdata/carol.pub");
const OPS: &str = include_str!("../../testdata/ops.pub");
const STRANGER: &str = include_str!("../../testdata/stranger.pub");

/// 2026-12-01, before every expiry in the shipped rules.
const BEFORE: u64 = 1_796_083_200;
/// 2027-06-30T00:00:00Z, alice's expiry.
const ALICE_EXPIRY: u64 = 1_814_313_600;

fn shipped() -> Rules {
    let input = Input {
        name: "policy-input:rules.yml".into(),
        data: include_bytes!("../../testdata/rules.yml").to_vec(),
    };
    Rules::load(&[input]).unwrap().0
}

fn ask(action: Action, team: Option<&str>, key: &str) -> Request {
    let mut request = request(action, team, key.trim());
    request.now = BEFORE;
    request
}

fn worker(mut request: Request, name: &str) -> Request {
    request.worker = Some(name.into());
    request
}

fn from(mut request: Request, addr: &str) -> Request {
    request.client_addr = addr.into();
    request
}

fn reason(rules: &Rules, request: &Request) -> String {
    match rules.authorize(request) {
        Decision::Deny(reason) => reason,
        Decision::Allow => panic!("expected a deny for {request:?}"),
    }
}

fn allowed(rules: &Rules, request: &Request) -> bool {
    rules.authorize(request).is_allow()
}

#[test]
fn connect_needs_a_listed_key() {
    let rules = shipped();
    for key in [ALICE, BOB, CAROL] {
        assert!(allowed(&rules, &ask(Action::Connect, None, key)));
    }
    let why = reason(&rules, &ask(Action::Connect, None, STRANGER));
    assert!(
        why.starts_with("key SHA256:") && why.ends_with("is not in the rules"),
        "{why}"
    );
}

#[test]
fn unknown_actions_are_denied() {
    let rules = shipped();
    let request = ask(Action::Other("rename".into()), Some("main"), ALICE);
    assert_eq!(
        reason(&rules, &request),
        "action `rename` is not known to this policy"
    );
}

#[test]
fn worker_names_must_match_the_team_patterns() {
    let rules = shipped();
    let register = || ask(Action::Register, Some("main"), ALICE);
    for name in ["main-1", "main-", "ci-07", "ci-ab"] {
        assert!(allowed(&rules, &worker(register(), name)), "{name}");
    }
    for name in ["ci-1", "ci-100", "Main-1", "data-worker-1", ""] {
        let why = reason(&rules, &worker(register(), name));
        assert_eq!(
            why,
            format!("worker `{name}` matches none of team main's worker patterns: main-*, ci-??")
        );
    }
    let why = reason(&rules, &register());
    assert!(why.starts_with("no worker name given; team main"), "{why}");
    for action in [Action::Land, Action::Retire, Action::Delete] {
        let request = worker(ask(action, Some("data"), BOB), "data-worker-2");
        assert!(allowed(&rules, &request));
    }
}

#[test]
fn team_keys_act_only_for_their_teams() {
    let rules = shipped();
    let why = reason(
        &rules,
        &worker(ask(Action::Register, Some("main"), BOB), "main-1"),
    );
    assert!(
        why.ends_with("(owner bob@example.com) is not in team main (its teams: data)"),
        "{why}"
    );
    let why = reason(&rules, &worker(ask(Action::Register, None, ALICE), "x"));
    assert!(why.contains("is not a global key"), "{why}");
}

#[test]
fn expired_keys_are_refused_with_owner_and_date() {
    let rules = shipped();
    let mut request = worker(ask(Action::Register, Some("data"), ALICE), "data-worker-1");
    request.now = ALICE_EXPIRY - 1;
    assert!(allowed(&rules, &request));
    request.now = ALICE_EXPIRY;
    let why = reason(&rules, &request);
    assert!(
        why.ends_with("(owner alice@example.com) expired at 2027-06-30"),
        "{why}"
    );
    let mut connect = ask(Action::Connect, None, CAROL);
    connect.now = 1_801_396_800;
    let why = reason(&rules, &connect);
    assert!(why.ends_with("expired at 2027-01-31T12:00:00Z"), "{why}");
}

#[test]
fn global_keys_act_only_from_their_networks() {
    let rules = shipped();
    for addr in ["10.0.0.1", "10.255.255.255", "fd00::1", "::ffff:10.1.2.3"] {
        assert!(
            allowed(&rules, &from(ask(Action::Connect, None, OPS), addr)),
            "{addr}"
        );
        let all_teams = worker(ask(Action::Register, None, OPS), "anything");
        assert!(allowed(&rules, &from(all_teams, addr)), "{addr}");
    }
    for addr in ["127.0.0.1", "192.0.2.1", "2001:db8::1", "not an address"] {
        let why = reason(&rules, &from(ask(Action::Connect, None, OPS), addr));
        assert!(
            why.starts_with(&format!("client address {addr} is outside the networks")),
            "{why}"
        );
        assert!(
            why.ends_with("(owner platform-oncall): 10.0.0.0/8, fd00::/8"),
            "{why}"
        );
    }
}

#[test]
fn global_keys_follow_the_team_patterns() {
    let rules = shipped();
    let register = |team, name| {
        from(
            worker(ask(Action::Register, Some(team), OPS), name),
            "10.0.0.5",
        )
    };
    assert!(allowed(&rules, &register("data", "data-worker-3")));
    let why = reason(&rules, &register("data", "main-1"));
    assert!(
        why.contains("matches none of team data's worker patterns"),
        "{why}"
    );
    let why = reason(&rules, &register("ghost", "ghost-1"));
    assert_eq!(
        why,
        "team ghost is not defined in the rules; no worker may act for it"
    );
}

use keygate_policy_sdk::yaml::parse;

use super::{EntryGrant, RuleFile, read};

const KEY: &str = include_str!("../../testdata/alice.pub");

/// The file and its faults as (line, message).
fn load(yaml: &str) -> (RuleFile, Vec<(usize, String)>) {
    let (file, faults) = read(parse(yaml).unwrap());
    let faults = faults.into_iter().map(|f| (f.line, f.message)).collect();
    (file, faults)
}

/// The faults of a file with one key entry made of `fields` (YAML lines
/// indented by two spaces) after its `key:` line, which is line 2.
fn key_faults(fields: &str) -> Vec<String> {
    let yaml = format!("keys:\n- key: {}\n{fields}", KEY.trim());
    let (file, faults) = load(&yaml);
    if faults.is_empty() {
        assert_eq!(file.keys.len(), 1);
    } else {
        assert!(file.keys.is_empty(), "a faulty entry is left out");
    }
    faults
        .into_iter()
        .map(|(l, m)| format!("{l}: {m}"))
        .collect()
}

#[test]
fn reads_the_documented_example() {
    let yaml = format!(
        "keys:\n  - key: {KEY}    owner: alice@example.com\n    expires: 2027-06-30\n    teams: [main, data]\n\
         \x20 - key: {KEY}    owner: platform-oncall\n    global: true\n    networks: [10.0.0.0/8, \"fd00::/8\"]\n\
         teams:\n  main:\n    workers: [\"main-*\", \"ci-??\"]\n  data:\n    workers: [\"data-worker-*\"]\n"
    );
    let (file, faults) = load(&yaml);
    assert_eq!(faults, []);
    let [alice, oncall] = &file.keys[..] else {
        panic!("{:?}", file.keys)
    };
    assert_eq!(alice.owner, "alice@example.com");
    assert_eq!(alice.expires.as_ref().map(|e| e.at), Some(1_814_313_600));
    assert!(matches!(&alice.grant, EntryGrant::Teams(t) if t.len() == 2));
    assert_eq!(oncall.expires, None);
    let EntryGrant::Global(networks) = &oncall.grant else {
        panic!()
    };
    assert_eq!(
        networks.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        ["10.0.0.0/8", "fd00::/8"]
    );
    let teams: Vec<_> = file
        .teams
        .iter()
        .map(|t| (t.name.value.as_str(), t.workers.len()))
        .collect();
    assert_eq!(teams, [("main", 2), ("data", 1)]);
}

#[test]
fn key_entries_need_an_owner_and_a_scope() {
    assert_eq!(
        key_faults("  owner: a\n  teams: [x]\n"),
        Vec::<String>::new()
    );
    assert_eq!(
        key_faults("  teams: [x]\n"),
        ["2: key entry has no `owner:`"]
    );
    assert_eq!(
        key_faults("  owner: a\n"),
        ["2: the key has no teams; list them under `teams:` or set `global: true`"]
    );
    assert_eq!(
        key_faults("  owner: a\n  teams: []\n  global: false\n"),
        ["2: the key has no teams; list them under `teams:` or set `global: true`"]
    );
    assert_eq!(
        key_faults("  owner: a\n  global: yes\n"),
        ["4: `global` must be true or false"]
    );
    assert_eq!(
        key_faults("  owner: a\n  team: [x]\n"),
        [
            "4: unknown field `team` in key entry (expected `key`, `owner`, `expires`, `teams`, `global`, `networks`)",
            "2: the key has no teams; list them under `teams:` or set `global: true`",
        ]
    );
}

#[test]
fn global_keys_need_networks_and_no_teams() {
    let needs = "2: a global key needs `networks:`, the CIDR networks it may be used from \
                 (0.0.0.0/0 and ::/0 admit every address)";
    assert_eq!(key_faults("  owner: a\n  global: true\n"), [needs]);
    assert_eq!(
        key_faults("  owner: a\n  global: true\n  networks: []\n"),
        [needs]
    );
    assert_eq!(
        key_faults("  owner: a\n  global: true\n  networks: [::/0, 0.0.0.0/0]\n"),
        Vec::<String>::new()
    );
    assert_eq!(
        key_faults("  owner: a\n  global: true\n  teams: [x]\n  networks: [::/0]\n"),
        ["2: a global key acts for every team; drop `teams:` or `global: true`"]
    );
    assert_eq!(
        key_faults("  owner: a\n  teams: [x]\n  networks: [::/0]\n"),
        ["2: `networks:` applies only to global keys (`global: true`)"]
    );
    assert_eq!(
        key_faults("  owner: a\n  global: true\n  networks:\n  - 10.0.0.1/8\n  - 10.0.0.0/40\n"),
        [
            "6: `networks`: CIDR `10.0.0.1/8` has host bits set; did you mean `10.0.0.0/8`?",
            "7: `networks`: invalid prefix length in CIDR `10.0.0.0/40` (0 to 32)",
        ]
    );
}

#[test]
fn keys_and_dates_are_checked() {
    assert_eq!(
        key_faults("  owner: a\n  teams: [x]\n  expires: 2027-02-30\n"),
        ["5: `expires`: invalid date `2027-02-30`; no such date or time of day"]
    );
    assert_eq!(
        key_faults("  owner: a\n  teams: [x]\n  expires: 2027-01-31T12:00:00\n").len(),
        1
    );
    assert!(
        key_faults("  owner: a\n  teams: [x]\n  expires: 2027-01-31T12:00:00+01:00\n").is_empty()
    );
    let (_, faults) =
        load("keys:\n- key: from=\"10.0.0.0/8\" ssh-ed25519 AAAA\n  owner: a\n  teams: [x]\n");
    assert!(
        faults[0]
            .1
            .contains("options such as from= are not read here"),
        "{faults:?}"
    );
    let (_, faults) = load("keys:\n- key: ssh-ed25519\n  owner: a\n  teams: [x]\n");
    assert_eq!(faults, [(2, "`key`: no public key found".to_owned())]);
}

#[test]
fn teams_need_valid_worker_patterns() {
    let faults = |teams: &str| -> Vec<String> {
        let (file, faults) = load(&format!("teams:\n{teams}"));
        if !faults.is_empty() {
            assert!(file.teams.is_empty());
        }
        faults
            .into_iter()
            .map(|(l, m)| format!("{l}: {m}"))
            .collect()
    };
    assert!(faults("  a:\n    workers: [\"*\"]\n").is_empty());
    assert_eq!(
        faults("  a:\n    workers: []\n"),
        ["3: team a has no worker patterns; list some under `workers:`"]
    );
    assert_eq!(
        faults("  a: {}\n"),
        ["2: team a has no worker patterns; list some under `workers:`"]
    );
    assert_eq!(
        faults("  a:\n    workers: [\"ci-[0-9]\"]\n    labels: x\n"),
        [
            "4: unknown field `labels` in team a (expected `workers`)",
            "3: worker pattern `ci-[0-9]` of team a holds '['; patterns have only the wildcards `*` and `?`, and no spaces",
        ]
    );
    assert_eq!(
        faults("  a:\n    workers: [\"main *\"]\n"),
        [
            "3: worker pattern `main *` of team a holds ' '; patterns have only the wildcards `*` and `?`, and no spaces"
        ]
    );
    assert_eq!(faults("  \"\": {workers: [x]}\n"), ["2: empty team name"]);
    assert_eq!(
        faults("  a: [x]\n"),
        ["2: expected team a's rules (`workers:`), found a list"]
    );
}

#[test]
fn the_top_level_is_keys_and_teams() {
    assert_eq!(load("").1, []);
    assert_eq!(
        load("- a\n").1,
        [(
            1,
            "expected a mapping with `keys:` and `teams:`, found a list".to_owned()
        )]
    );
    assert_eq!(
        load("keys: []\nteam: {}\n").1,
        [(
            2,
            "unknown field `team` in the rules (expected `keys`, `teams`)".to_owned()
        )]
    );
    assert_eq!(
        load("keys: x\nteams: [a]\n").1,
        [
            (1, "`keys` must be a list, found a string".to_owned()),
            (
                2,
                "`teams` must map team names to `workers:`, found a list".to_owned()
            ),
        ]
    );
}

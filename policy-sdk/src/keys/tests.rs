use std::net::IpAddr;

use super::*;
use crate::civil_to_unix;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINF4cdaNFl+Uhb11GUEeH5KI4Gh/LfZMvRQWJSlIRpai one";
const ED25519_FP: &str = "SHA256:XhsmKnjTODv6G7pX3V7ijhIwdvY9PvMc1xKfTGHDr5w";
const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFN/3XPHEZ+oKm1bpe9AQ48QBWP/MmstLc42sxgoAh637+mxP8e6Q745v/zyb1Jxh5Jd0uRTjxHhmYZCv7QHaR8= two";
const ECDSA_FP: &str = "SHA256:1VWpSvA34iZwBMCgGwetbq4HgrhHuAVRSGXbihq+KA8";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCpW+bhhaHMZVf/W0NAVxVw1+4J5vfdu3Y3hC+EkmqIkgFPD+crN4H0LMfKWpfglWs65xWLKe9GErfG8RqLAGJ6Fo/N88KNlo9OVNF5PxGbTwWF+wJRMGq/IYLiohLR0XsqCt29VA/VGyAgS2Y55BtNCsDYRlYZN8QyXqzvAh9RSVv6FfImR3plbRtin5WARyNc2dJtG2itl/V6mn2dWpTDGPfen05NhsAKp/zDcUAZKiZZ+uU+QPD80b705bJtFZSr3Uz0NZLXHCXxBYBxD9RWpR4AJT5H5tcYZIXNNb6OZBlYZrQmdrnjJjxwncO+jv3fmEnCJEppY9Yx4XxLMEW7 three";
const RSA_FP: &str = "SHA256:At7Du8zgamA9zoHofn93it49KqLQ4Zp61mnUC/bCbFo";

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn fingerprints_match_ssh_keygen() {
    for (line, fp) in [(ED25519, ED25519_FP), (ECDSA, ECDSA_FP), (RSA, RSA_FP)] {
        assert_eq!(PublicKeyData::parse(line).unwrap().fingerprint(), fp);
    }
}

#[test]
fn keys_compare_by_data_not_text() {
    let a = PublicKeyData::parse(ED25519).unwrap();
    let b = PublicKeyData::parse(&format!("  {}   another comment", &ED25519[..80])).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, PublicKeyData::parse(ECDSA).unwrap());
    assert_eq!(a.to_openssh(), ED25519.trim_end_matches(" one"));
}

#[test]
fn rejects_bad_keys() {
    let truncated = &ED25519[..60];
    assert!(matches!(
        PublicKeyData::parse(truncated),
        Err(KeyError::Malformed(_) | KeyError::BadBase64)
    ));
    assert_eq!(
        PublicKeyData::parse("ssh-foo AAAA"),
        Err(KeyError::UnknownAlgorithm("ssh-foo".into()))
    );
    assert_eq!(
        PublicKeyData::parse("ssh-ed25519 !!!"),
        Err(KeyError::BadBase64)
    );
    // ed25519 data presented as an ECDSA key.
    let swapped = ED25519.replace("ssh-ed25519", "ecdsa-sha2-nistp256");
    let err = PublicKeyData::parse(&swapped).unwrap_err().to_string();
    assert!(err.contains("`ssh-ed25519` key"), "{err}");
    assert!(matches!(
        PublicKeyData::parse("ssh-dss AAAA"),
        Err(KeyError::Unsupported(_))
    ));
}

#[test]
fn plain_line_has_no_options() {
    let key = parse_authorized_key(RSA).unwrap().unwrap();
    assert!(key.options.is_empty());
    assert_eq!(key.comment, "three");
    assert_eq!(parse_authorized_key("   # comment").unwrap(), None);
    assert_eq!(parse_authorized_key("").unwrap(), None);
}

#[test]
fn from_patterns_with_cidr_glob_and_negation() {
    let line = format!(r#"from="10.0.0.0/8,!10.1.2.3,192.168.1.*,2001:db8::/32" {ED25519}"#);
    let key = parse_authorized_key(&line).unwrap().unwrap();
    let o = &key.options;
    assert_eq!(o.check(ip("10.9.9.9"), 0), Ok(()));
    assert!(o.check(ip("10.1.2.3"), 0).unwrap_err().contains("excluded"));
    assert_eq!(o.check(ip("192.168.1.77"), 0), Ok(()));
    assert!(
        o.check(ip("192.168.2.1"), 0)
            .unwrap_err()
            .contains("not in from=")
    );
    assert_eq!(o.check(ip("2001:db8::5"), 0), Ok(()));
    assert!(o.check(ip("2001:db9::5"), 0).is_err());
    assert!(o.check(None, 0).is_err());
}

#[test]
fn from_rejects_bad_cidr_and_warns_on_names() {
    let err = parse_authorized_key(&format!(r#"from="10.0.0.1/8" {ED25519}"#)).unwrap_err();
    assert!(
        err.contains("host bits") && err.contains("10.0.0.0/8"),
        "{err}"
    );
    let err = parse_authorized_key(&format!(r#"from="10.0.0.0/33" {ED25519}"#)).unwrap_err();
    assert!(err.contains("prefix length"), "{err}");
    let key = parse_authorized_key(&format!(r#"from="*.example.com" {ED25519}"#))
        .unwrap()
        .unwrap();
    assert!(key.warnings[0].contains("host name"));
}

#[test]
fn expiry_time_is_enforced() {
    let key = parse_authorized_key(&format!(r#"expiry-time="20300101" {ED25519}"#))
        .unwrap()
        .unwrap();
    let expiry = civil_to_unix(2030, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(key.options.expiry(), Some(expiry));
    assert_eq!(key.options.check(ip("127.0.0.1"), expiry - 1), Ok(()));
    assert!(
        key.options
            .check(ip("127.0.0.1"), expiry)
            .unwrap_err()
            .contains("expired")
    );
    assert_eq!(
        parse_expiry("203001021530Z"),
        Ok(civil_to_unix(2030, 1, 2, 15, 30, 0).unwrap())
    );
    assert_eq!(
        parse_expiry("20300102153045"),
        Ok(civil_to_unix(2030, 1, 2, 15, 30, 45).unwrap())
    );
    assert!(parse_expiry("2030010").is_err());
    assert!(parse_expiry("20301301").is_err());
}

#[test]
fn option_policy() {
    let with = |opts: &str| parse_authorized_key(&format!("{opts} {ED25519}"));
    assert!(
        with("no-pty,no-X11-forwarding")
            .unwrap()
            .unwrap()
            .warnings
            .len()
            == 2
    );
    assert!(
        with("restrict,port-forwarding")
            .unwrap()
            .unwrap()
            .warnings
            .is_empty()
    );
    assert!(with("restrict").unwrap_err().contains("reverse tunnels"));
    assert!(
        with(r#"command="/bin/true""#)
            .unwrap_err()
            .contains("not supported")
    );
    assert!(
        with("no-port-forwarding")
            .unwrap_err()
            .contains("not supported")
    );
    assert!(
        with("frobnicate")
            .unwrap_err()
            .contains("unknown option `frobnicate`")
    );
    let misspelt = ED25519.replace("ssh-ed25519", "ssh-ed2559");
    assert!(
        parse_authorized_key(&misspelt)
            .unwrap_err()
            .contains("unknown key type `ssh-ed2559`")
    );
    assert!(
        with("frobnicate,no-pty")
            .unwrap_err()
            .contains("unknown option `frobnicate`")
    );
    assert!(with(r#"from="1.2.3.4"#).is_err());
    // Quoted values may hold spaces and escaped quotes.
    let quoted = with(r#"from="10.0.0.0/8, 127.0.0.1",no-pty"#)
        .unwrap()
        .unwrap();
    assert_eq!(quoted.options.check(ip("127.0.0.1"), 0), Ok(()));
}

#[test]
fn whole_file_reports_every_bad_line() {
    let text = format!("# keys\n{ED25519}\nssh-ed25519 garbage\n\n{ECDSA}\nbogus-option {RSA}\n");
    let parsed = parse_authorized_keys(&text);
    assert_eq!(
        parsed.keys.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        vec![2, 5]
    );
    assert_eq!(
        parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        vec![3, 6]
    );
}

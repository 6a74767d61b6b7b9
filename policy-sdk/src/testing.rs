//! Helpers for unit-testing a policy natively, without keygate.

use crate::keys::PublicKeyData;
use crate::{Action, PublicKey, Request};

/// A request for `openssh` (an `ALGORITHM BASE64 [COMMENT]` line) with
/// everything else set to neutral values: user `worker`, client address
/// `127.0.0.1`, no worker name, time 0 (1970, before any expiry). Panics if
/// the key does not parse, which in a test is what one wants.
#[expect(
    clippy::expect_used,
    reason = "test helper; a bad key is a bug in the test"
)]
pub fn request(action: Action, team: Option<&str>, openssh: &str) -> Request {
    let key = PublicKeyData::parse(openssh).expect("test key must parse");
    Request {
        action,
        team: team.map(str::to_owned),
        user: "worker".to_owned(),
        key: PublicKey {
            algorithm: key.algorithm().to_owned(),
            fingerprint: key.fingerprint(),
            openssh: key.to_openssh(),
        },
        certificate: None,
        client_addr: "127.0.0.1".to_owned(),
        worker: None,
        now: 0,
    }
}

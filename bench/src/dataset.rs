//! A synthetic team-key data set: `teams` teams of `per_team` ed25519 keys.
//!
//! Keys are structurally valid ed25519 public keys derived from their index,
//! so a data set of any size is generated in milliseconds and is the same
//! on every run. They are never used to sign anything.

use base64::Engine as _;

/// The key with index `n`, as an OpenSSH line without comment.
pub fn key(n: u32) -> String {
    let mut blob = Vec::with_capacity(51);
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    let mut data = [0u8; 32];
    data[..4].copy_from_slice(&n.to_be_bytes());
    data[4..8].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
    data[8..12].copy_from_slice(&0x6b65_7967u32.to_be_bytes());
    blob.extend_from_slice(&data);
    format!(
        "ssh-ed25519 {}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// The YAML team-key file: team `team-T` holds keys `T * per_team ..`.
pub fn teams_yaml(teams: u32, per_team: u32) -> String {
    let mut out = String::with_capacity((teams * per_team) as usize * 100);
    for team in 0..teams {
        out.push_str(&format!("- team: team-{team}\n  ssh_keys:\n"));
        for k in 0..per_team {
            out.push_str(&format!(
                "  - {} key-{team}-{k}\n",
                key(team * per_team + k)
            ));
        }
    }
    out
}

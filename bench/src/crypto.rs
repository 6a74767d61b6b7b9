//! The physical limit: the server-side cryptography of one handshake,
//! measured in process. A curve25519-sha256 key exchange with an ed25519
//! host key and an ed25519 client key costs the server one X25519 key
//! pair, one X25519 shared secret, the exchange hash, one ed25519 signature
//! (the host key proving itself) and one ed25519 verification (the client
//! proving itself).

use std::hint::black_box;
use std::time::Instant;

use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use sha2::{Digest as _, Sha256};

/// The result: seconds per handshake on one core, and the machine's cores.
#[derive(Debug, Clone, Copy)]
pub struct Ceiling {
    pub seconds_per_handshake: f64,
    pub cores: usize,
}

impl Ceiling {
    /// Handshakes per second if the server did nothing but this
    /// cryptography on every core.
    pub fn rate(&self) -> f64 {
        self.cores as f64 / self.seconds_per_handshake
    }
}

/// Measure it.
pub fn ceiling() -> Ceiling {
    let host = SigningKey::from_bytes(&[7u8; 32]);
    let client = SigningKey::from_bytes(&[9u8; 32]);
    let client_public = client.verifying_key();
    let client_signature = client.sign(b"session id and userauth request");
    let peer = MontgomeryPoint::mul_base_clamped([3u8; 32]);
    let one = |i: u64| {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&i.to_le_bytes());
        let ephemeral = MontgomeryPoint::mul_base_clamped(secret);
        let shared = peer.mul_clamped(secret);
        let hash = Sha256::new()
            .chain_update(ephemeral.as_bytes())
            .chain_update(shared.as_bytes())
            .finalize();
        let host_signature = host.sign(&hash);
        let ok = client_public
            .verify(b"session id and userauth request", &client_signature)
            .is_ok();
        black_box((host_signature, ok));
    };
    for i in 0..200 {
        one(i);
    }
    let rounds = 3_000u64;
    let started = Instant::now();
    for i in 0..rounds {
        one(i);
    }
    let seconds_per_handshake = started.elapsed().as_secs_f64() / rounds as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ceiling {
        seconds_per_handshake,
        cores,
    }
}

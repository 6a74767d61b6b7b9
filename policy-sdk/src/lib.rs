//! Write keygate policies in Rust.
//!
//! A keygate policy is a WebAssembly component that answers one question for
//! the gateway: may this key do this, for this team? This crate gives policy
//! authors the contract's types, a [`Policy`] trait to implement, the
//! [`export_policy!`] macro that turns an implementation into the component's
//! exports, and helpers for the OpenSSH formats policies usually read:
//! [`keys`] parses `authorized_keys` lines (with their `from=` and
//! `expiry-time=` options) and compares keys by algorithm and key data;
//! [`net::Cidr`], [`glob::glob_match`] and [`parse_rfc3339`] read the
//! networks, name patterns and dates a policy's own input format may hold.
//! With the `yaml` feature (`keygate-policy-sdk = { ..., features =
//! ["yaml"] }`), the `yaml` module reads YAML into a tree that keeps every
//! node's line, and checks its fields, so that faults read
//! `FILE:LINE: message`.
//!
//! # Example
//!
//! A policy that lets exactly one key in, for every team:
//!
//! ```
//! use keygate_policy_sdk::keys::PublicKeyData;
//! use keygate_policy_sdk::{Decision, InitReport, Input, Policy, Request};
//!
//! struct OneKey {
//!     key: PublicKeyData,
//! }
//!
//! impl Policy for OneKey {
//!     fn init(inputs: Vec<Input>) -> Result<(Self, InitReport), String> {
//!         let input = inputs.first().ok_or("no input given")?;
//!         let text = std::str::from_utf8(&input.data)
//!             .map_err(|_| format!("{}: not UTF-8", input.name))?;
//!         let key = PublicKeyData::parse(text.trim())
//!             .map_err(|e| format!("{}: {e}", input.name))?;
//!         let report = InitReport::default().summary(format!("one key: {}", key.fingerprint()));
//!         Ok((OneKey { key }, report))
//!     }
//!
//!     fn authorize(&self, request: &Request) -> Decision {
//!         match request.key_data() {
//!             Ok(key) if key == self.key => Decision::Allow,
//!             _ => Decision::deny("not the one key"),
//!         }
//!     }
//! }
//!
//! keygate_policy_sdk::export_policy!(OneKey);
//!
//! # let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBQu2MoaOR8rGzzn7Yu0VsMR0LzMHpkZ0FLb9uvYbF1";
//! # let input = Input { name: "key".into(), data: key.as_bytes().to_vec() };
//! # let (policy, _) = OneKey::init(vec![input]).unwrap();
//! # let request = keygate_policy_sdk::testing::request(
//! #     keygate_policy_sdk::Action::Connect, None, key);
//! # assert_eq!(policy.authorize(&request), Decision::Allow);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` from a
//! `cdylib` crate and hand the `.wasm` to `keygate --policy`.

#![deny(missing_docs)]

extern crate self as keygate_policy_sdk;

pub mod glob;
pub mod keys;
pub mod log;
pub mod net;
pub mod testing;
mod time;
mod types;
#[cfg(feature = "yaml")]
pub mod yaml;

pub use time::{civil_to_unix, parse_rfc3339};
pub use types::*;

/// Bindings generated from keygate's WIT contract (`wit/policy.wit`).
///
/// Policy authors rarely need these directly: [`Policy`] and
/// [`export_policy!`] wrap them.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "keygate-policy",
        pub_export_macro: true,
        export_macro_name: "__export_guest",
        default_bindings_module: "keygate_policy_sdk::bindings",
        runtime_path: "keygate_policy_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
    });
}

/// A keygate policy.
///
/// keygate calls [`Policy::init`] once per load with the input documents the
/// operator configured, then [`Policy::authorize`] for every decision. The
/// value `init` returns is kept between calls, so index the inputs there:
/// `authorize` runs on every SSH handshake and worker command, under a
/// deadline.
pub trait Policy: Sized + 'static {
    /// Build the policy from its inputs. An `Err` fails the load and is
    /// shown to the operator as is: name the input, the line and the fault.
    fn init(inputs: Vec<Input>) -> Result<(Self, InitReport), String>;

    /// Decide one request.
    fn authorize(&self, request: &Request) -> Decision;
}

/// Export a [`Policy`] implementation as the component's `keygate:policy`
/// exports. Use it once, in the policy crate's `lib.rs`.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        // The generated export glue is `unsafe` FFI; the policy's own code
        // stays under the crate's lints. Off Wasm there is nothing to export
        // to (native builds exist for unit tests), so the glue is left out.
        #[cfg(target_family = "wasm")]
        #[allow(unsafe_code)]
        const _: () = {
            ::std::thread_local! {
                static POLICY: ::std::cell::RefCell<::std::option::Option<$policy>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct Export;

            impl $crate::bindings::exports::keygate::policy::policy::Guest for Export {
                fn init(
                    inputs: ::std::vec::Vec<$crate::Input>,
                ) -> ::std::result::Result<$crate::InitReport, ::std::string::String> {
                    let (policy, report) = <$policy as $crate::Policy>::init(inputs)?;
                    POLICY.with(|slot| *slot.borrow_mut() = ::std::option::Option::Some(policy));
                    ::std::result::Result::Ok(report)
                }

                fn authorize(request: $crate::Request) -> $crate::Decision {
                    POLICY.with(|slot| match &*slot.borrow() {
                        ::std::option::Option::Some(policy) => {
                            $crate::Policy::authorize(policy, &request)
                        }
                        ::std::option::Option::None => {
                            $crate::Decision::deny("policy was not initialised")
                        }
                    })
                }
            }

    $crate::bindings::__export_guest!(Export with_types_in $crate::bindings);
        };

        // Natively the policy is still "used", so that unit-test builds of a
        // policy crate do not warn that its code is dead.
        #[cfg(not(target_family = "wasm"))]
        const _: () = {
            let _ = <$policy as $crate::Policy>::init;
            let _ = <$policy as $crate::Policy>::authorize;
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

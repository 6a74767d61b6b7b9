//! The russh handler: authentication through the policy, and routing of
//! channels and global requests.
//!
//! Authentication asks the policy twice. When a key is offered, `connect`
//! is asked so that unknown keys are turned away before any signature work.
//! After russh has verified the signature, `connect` is asked again for the
//! verified key, and only that key is bound to the connection: every later
//! decision uses it. When the verified key, user name and policy are exactly
//! those the offer was allowed under (the usual case: a client offers a key
//! and then signs with it), that answer is reused rather than asked again.

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use russh::keys::{Algorithm, PublicKey};
use russh::server::{
    Auth as AuthResult, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::connection::{Auth, Connection};
use super::{forward, session};
use crate::domain::KeyIdentity;
use crate::gateway::LiveSession;
use crate::policy::{Action, DecisionRequest, LoadedPolicy};

/// A key offer the policy allowed, awaiting its signature.
struct AllowedOffer {
    user: String,
    key: KeyIdentity,
    policy: Weak<LoadedPolicy>,
}

/// One connection's handler.
pub struct ConnectionHandler {
    conn: Arc<Connection>,
    auth: Option<Arc<Auth>>,
    offer: Option<AllowedOffer>,
    authenticated: Option<oneshot::Sender<()>>,
}

impl ConnectionHandler {
    /// A handler for `conn`; `authenticated` fires once auth succeeds.
    pub fn new(conn: Arc<Connection>, authenticated: oneshot::Sender<()>) -> ConnectionHandler {
        ConnectionHandler {
            conn,
            auth: None,
            offer: None,
            authenticated: Some(authenticated),
        }
    }

    fn reject() -> AuthResult {
        AuthResult::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        }
    }

    /// Whether `algorithm` is an RSA signature over SHA-1 that is not
    /// allowed here.
    fn refused_sha1(&self, algorithm: &Algorithm) -> bool {
        matches!(algorithm, Algorithm::Rsa { hash: None })
            && !self.conn.gateway.config.allow_ssh_rsa_sha1
    }

    /// Ask the policy whether `key` may connect as `user`; on allow, also
    /// return the policy that answered.
    async fn may_connect(
        &self,
        user: &str,
        key: &PublicKey,
    ) -> Option<(KeyIdentity, Arc<LoadedPolicy>)> {
        let identity = match KeyIdentity::from_ssh(key) {
            Ok(identity) => identity,
            Err(e) => {
                tracing::info!(error = %e, "unusable client key");
                return None;
            }
        };
        let policy = self.conn.gateway.policy();
        let request = DecisionRequest {
            action: Action::Connect,
            team: None,
            user: user.to_owned(),
            key: identity.clone(),
            client: self.conn.client,
            worker: None,
            time: SystemTime::now(),
        };
        let allowed = self
            .conn
            .gateway
            .decide_on(&policy, self.conn.id, request)
            .await
            .is_allow();
        allowed.then_some((identity, policy))
    }

    async fn offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> AuthResult {
        if self.refused_sha1(offer.algorithm) {
            tracing::info!("ssh-rsa (SHA-1) signature refused; use rsa-sha2-256/512");
            return Self::reject();
        }
        match self.may_connect(user, offer.public_key).await {
            Some((key, policy)) => {
                let user = user.to_owned();
                self.offer = Some(AllowedOffer {
                    user,
                    key,
                    policy: Arc::downgrade(&policy),
                });
                AuthResult::Accept
            }
            None => Self::reject(),
        }
    }

    /// The identity of a verified key if the allowed offer covers it: same
    /// user, same key, and the policy that allowed it still active.
    fn covered_by_offer(&mut self, user: &str, key: &PublicKey) -> Option<KeyIdentity> {
        let offer = self.offer.take()?;
        let current = self.conn.gateway.policy();
        let same_policy = offer
            .policy
            .upgrade()
            .is_some_and(|p| Arc::ptr_eq(&p, &current));
        if !same_policy || offer.user != user {
            return None;
        }
        let identity = KeyIdentity::from_ssh(key).ok()?;
        (offer.key == identity).then_some(identity)
    }

    async fn verified(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> AuthResult {
        if self.refused_sha1(key.algorithm) {
            return Self::reject();
        }
        let identity = match self.covered_by_offer(user, key.public_key) {
            Some(identity) => Some(identity),
            None => self
                .may_connect(user, key.public_key)
                .await
                .map(|(identity, _)| identity),
        };
        match identity {
            Some(identity) => {
                tracing::info!(user, key.fingerprint = %identity.fingerprint(), "authenticated");
                if let Some(audit) = self.conn.gateway.audit() {
                    let line = crate::audit::authenticated(
                        self.conn.id,
                        self.conn.client,
                        user,
                        identity.fingerprint(),
                    );
                    audit.record(&line);
                }
                self.auth = Some(Arc::new(Auth {
                    user: user.to_owned(),
                    key: identity,
                }));
                AuthResult::Accept
            }
            None => Self::reject(),
        }
    }
}

impl Handler for ConnectionHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<AuthResult, Self::Error> {
        Ok(Self::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<AuthResult, Self::Error> {
        let span = self.conn.span.clone();
        Ok(self.offered(user, offer).instrument(span).await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<AuthResult, Self::Error> {
        let span = self.conn.span.clone();
        Ok(self.verified(user, key).instrument(span).await)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if let Some(auth) = &self.auth {
            let live = LiveSession {
                handle: session.handle(),
                user: auth.user.clone(),
                key: auth.key.clone(),
                client: self.conn.client,
            };
            self.conn.gateway.session_started(self.conn.id, live);
        }
        if let Some(tx) = self.authenticated.take() {
            let _ = tx.send(());
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(auth) = self.auth.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        reply.accept().await;
        let conn = self.conn.clone();
        let span = conn.span.clone();
        tokio::spawn(session::serve(channel, conn, auth).instrument(span));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(parent: &self.conn.span, host, port, "refused direct-tcpip channel: local forwarding is not offered");
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The session task reads the command and answers on stderr with the
        // exit status; refusing the request here would hide the reason.
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if self.auth.is_none() {
            return Ok(false);
        }
        let span = self.conn.span.clone();
        Ok(forward::open(&self.conn, session.handle(), address, port)
            .instrument(span)
            .await)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let _span = self.conn.span.enter();
        Ok(forward::cancel(&self.conn, address, port))
    }
}

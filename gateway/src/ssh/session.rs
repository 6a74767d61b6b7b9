//! Session channels: where workers run `forward-worker` and friends.
//!
//! The command arrives as an `exec` request, the worker's JSON on stdin.
//! Every refusal is written to the channel's stderr as one line starting
//! with `keygate:` and ends the command with exit status 1, so the worker
//! sees why, not only that it failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use russh::ChannelMsg;
use russh::server::Msg;
use serde_json::Value;

use super::command::{MAX_PAYLOAD_BYTES, WorkerCommand, WorkerPayload, payload_complete};
use super::connection::{Auth, Connection};
use super::forward;
use crate::domain::{Team, WorkerName};
use crate::policy::{Action, DecisionRequest};
use crate::registry::{WorkerRecord, WorkerState, unix_now};

type Channel = russh::Channel<Msg>;

/// Serve one session channel until it closes.
pub async fn serve(mut channel: Channel, conn: Arc<Connection>, auth: Arc<Auth>) {
    let Some((command, stdin)) = read_request(&mut channel).await else {
        return;
    };
    let payload = match WorkerPayload::parse(&stdin) {
        Ok(payload) => payload,
        Err(e) => return fail(&channel, &e).await,
    };
    let ctx = Context { conn, auth };
    match command {
        WorkerCommand::Forward {
            garden,
            baggageclaim,
        } => {
            ctx.forward(channel, payload, garden.as_deref(), baggageclaim.as_deref())
                .await;
        }
        other => ctx.change_state(channel, &other, payload).await,
    }
}

/// Wait for the command and its complete JSON payload. Returns `None` when
/// the channel was answered (refused) or closed.
async fn read_request(channel: &mut Channel) -> Option<(WorkerCommand, Vec<u8>)> {
    let mut command = None;
    let mut stdin = Vec::new();
    loop {
        match channel.wait().await? {
            ChannelMsg::Exec { command: line, .. } if command.is_none() => {
                match WorkerCommand::parse(&String::from_utf8_lossy(&line)) {
                    Ok(c) => command = Some(c),
                    Err(e) => return refuse(channel, &e).await,
                }
            }
            ChannelMsg::RequestShell { .. } => {
                let msg = "no shell here; workers run forward-worker, land-worker, \
                           retire-worker or delete-worker";
                return refuse(channel, msg).await;
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                return refuse(channel, &format!("subsystem `{name}` is not available")).await;
            }
            ChannelMsg::Data { data } => {
                stdin.extend_from_slice(&data);
                if stdin.len() > MAX_PAYLOAD_BYTES {
                    let msg = format!("worker JSON is over {MAX_PAYLOAD_BYTES} bytes");
                    return refuse(channel, &msg).await;
                }
            }
            ChannelMsg::Eof => {
                return match command {
                    Some(c) => Some((c, stdin)),
                    None => refuse(channel, "no command given").await,
                };
            }
            ChannelMsg::Close => return None,
            _ => continue,
        }
        // Workers that keep stdin open are served as soon as their JSON is
        // complete.
        if let Some(c) = &command
            && !stdin.is_empty()
        {
            match payload_complete(&stdin) {
                Ok(true) => return Some((c.clone(), stdin)),
                Ok(false) => {}
                Err(e) => return refuse(channel, &e).await,
            }
        }
    }
}

async fn refuse<T>(channel: &Channel, message: &str) -> Option<T> {
    fail(channel, message).await;
    None
}

/// Write `message` to stderr and end the command with status 1.
async fn fail(channel: &Channel, message: &str) {
    tracing::info!(reason = message, "worker command refused");
    let line = format!("keygate: {message}\n");
    let _ = channel.extended_data_bytes(1, line.into_bytes()).await;
    finish(channel, 1).await;
}

async fn finish(channel: &Channel, status: u32) {
    let _ = channel.exit_status(status).await;
    let _ = channel.eof().await;
    let _ = channel.close().await;
}

struct Context {
    conn: Arc<Connection>,
    auth: Arc<Auth>,
}

impl Context {
    fn request(&self, action: Action, team: Option<Team>, worker: &WorkerName) -> DecisionRequest {
        DecisionRequest {
            action,
            team,
            user: self.auth.user.clone(),
            key: self.auth.key.clone(),
            client: self.conn.client,
            worker: Some(worker.clone()),
            time: SystemTime::now(),
        }
    }

    async fn forward(
        &self,
        channel: Channel,
        mut payload: WorkerPayload,
        garden: Option<&str>,
        bc: Option<&str>,
    ) {
        let gateway = &self.conn.gateway;
        let name = payload.worker();
        let team = payload.team();
        let request = self.request(Action::Register, team.clone(), &name);
        if let Err(reason) = gateway.allowed(self.conn.id, request).await {
            return fail(&channel, &reason).await;
        }
        let peer = gateway.config.peer_address;
        if let Some(spec) = garden {
            let Some(bound) = forward::lookup(&self.conn, spec) else {
                return fail(
                    &channel,
                    &format!("no reverse tunnel for --garden {spec}; request it first"),
                )
                .await;
            };
            let addr = SocketAddr::new(peer, bound.port()).to_string();
            payload.rest.insert("addr".into(), Value::String(addr));
        }
        if let Some(spec) = bc {
            let Some(bound) = forward::lookup(&self.conn, spec) else {
                return fail(
                    &channel,
                    &format!("no reverse tunnel for --baggageclaim {spec}; request it first"),
                )
                .await;
            };
            let url = format!("http://{}", SocketAddr::new(peer, bound.port()));
            payload
                .rest
                .insert("baggageclaim_url".into(), Value::String(url));
        }
        let now = unix_now();
        let record = WorkerRecord {
            name: name.clone(),
            team: team.clone(),
            state: WorkerState::Running,
            key_fingerprint: self.auth.key.fingerprint().clone(),
            client_addr: self.conn.client.to_string(),
            connection_id: self.conn.id,
            connected_at: now,
            last_heartbeat: now,
            payload: payload.rest,
        };
        let generation = match gateway.registry.register(record) {
            Ok(generation) => generation,
            Err(taken) => return fail(&channel, &taken.to_string()).await,
        };
        let team_label = team.as_ref().map_or("", Team::as_str);
        tracing::info!(worker = %name, team = team_label, "worker registered");
        self.heartbeat(channel, &name, generation).await;
        gateway.registry.remove(&name, generation);
        tracing::info!(worker = %name, team = team_label, "worker left");
    }

    /// Send `registered`, then `heartbeated` every interval, until the
    /// channel closes or the worker is deleted.
    async fn heartbeat(&self, mut channel: Channel, name: &WorkerName, generation: u64) {
        let gateway = &self.conn.gateway;
        if channel
            .data_bytes(&b"{\"event\":\"registered\"}\n"[..])
            .await
            .is_err()
        {
            return;
        }
        let mut ticker = tokio::time::interval(gateway.config.heartbeat_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                msg = channel.wait() => match msg {
                    None | Some(ChannelMsg::Close) => return,
                    Some(_) => {}
                },
                _ = ticker.tick() => {
                    if !gateway.registry.heartbeat(name, generation) {
                        let _ = channel.extended_data_bytes(1, &b"keygate: worker registration was deleted or replaced\n"[..]).await;
                        return finish(&channel, 0).await;
                    }
                    if channel.data_bytes(&b"{\"event\":\"heartbeated\"}\n"[..]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// `land-worker`, `retire-worker`, `delete-worker`. The team checked is
    /// the registered worker's own, not the one the payload claims.
    async fn change_state(
        &self,
        channel: Channel,
        command: &WorkerCommand,
        payload: WorkerPayload,
    ) {
        let gateway = &self.conn.gateway;
        let name = payload.worker();
        let owner = gateway.registry.owner(&name);
        let team = match &owner {
            Some((team, _)) => team.clone(),
            None => payload.team(),
        };
        let action = command.action();
        if let Err(reason) = gateway
            .allowed(self.conn.id, self.request(action.clone(), team, &name))
            .await
        {
            return fail(&channel, &reason).await;
        }
        if owner.is_none() {
            return fail(
                &channel,
                &format!("no worker named {name} is registered here"),
            )
            .await;
        }
        let done = match command {
            WorkerCommand::Land => gateway.registry.set_state(&name, WorkerState::Landing),
            WorkerCommand::Retire => gateway.registry.set_state(&name, WorkerState::Retiring),
            _ => gateway.registry.delete(&name),
        };
        if !done {
            return fail(
                &channel,
                &format!("worker {name} left before the {action} took effect"),
            )
            .await;
        }
        tracing::info!(worker = %name, action = %action, "worker state changed");
        finish(&channel, 0).await;
    }
}

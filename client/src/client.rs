//! The high-level client: register/login with key publishing, encrypted send, decrypting receive, history.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vodozemac::Curve25519PublicKey;
use vodozemac::olm::{Account, Session};
use wire::Empty;
use wire::auth::{Login as LoginEndpoint, LoginRequest, Register, RegisterRequest};
use wire::chats::{ListMessages, ListMessagesRequest};
use wire::files::{PresignRequest, PresignUpload};
use wire::keys::{ClaimKeys, ClaimKeysRequest, CountKeys, Device, ListDevices, ListDevicesRequest, UploadKeys};
use wire::ws::{ClientAction, Envelope, LooseId, SendMessage, ServerEvent};
use wire::{MessageType, TokenResponse};

use crate::api::Api;
use crate::crypto::{Crypto, DeviceKeys, b64, open_file, seal_file, unb64};
use crate::store::{self, Saved};

/// Marker put in `encrypted_content` of end-to-end encrypted messages (the real content is in envelopes).
pub const MARKER: &str = "e2ee:v1";
/// One-time keys published at a time.
const BATCH: usize = 50;
/// Top up when fewer than this many remain on the server.
const LOW_WATER: i64 = 20;

/// An encrypted attachment as referenced inside a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub name: String,
    pub size: u64,
    pub key: String,
    pub nonce: String,
    /// Presigned URL of the ciphertext (fresh for this viewer).
    pub media_url: Option<String>,
}

/// A message as this device sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: i64,
    pub sender_id: i64,
    pub receiver_id: i64,
    pub sender_device_id: Option<String>,
    /// Decrypted text, if this device could decrypt it.
    pub text: Option<String>,
    pub file: Option<FileRef>,
    /// True when no envelope for this device existed or decryption failed.
    pub undecryptable: bool,
}

/// What a server event means to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A decrypted (or undecryptable) message.
    Message(Received),
    /// A device of a user was added, changed its identity or was removed.
    KeyChange { user_id: i64, device_id: String, change: String },
    /// Any other event, as sent.
    Other(ServerEvent),
}

/// A WebSocket connection to the server.
pub struct Socket {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    pending: VecDeque<ServerEvent>,
}

impl Socket {
    async fn send(&mut self, action: &ClientAction) -> anyhow::Result<()> {
        self.stream.send(Message::Text(serde_json::to_string(action)?.into())).await?;
        Ok(())
    }

    async fn read(&mut self) -> anyhow::Result<Option<ServerEvent>> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => return Ok(Some(serde_json::from_str(&t)?)),
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// The next server event (`{"event", "data"}`), `None` once the connection is closed.
    pub async fn next_event(&mut self) -> anyhow::Result<Option<ServerEvent>> {
        if let Some(v) = self.pending.pop_front() {
            return Ok(Some(v));
        }
        self.read().await
    }

    /// Sends a `ping` (clients must at least every 5 minutes).
    pub async fn ping(&mut self) -> anyhow::Result<()> {
        self.send(&ClientAction::Ping).await
    }
}

/// How to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginAs {
    /// By phone number.
    Phone(String),
    /// By username.
    Username(String),
}

/// One device of one user.
pub struct Client {
    pub api: Api,
    pub user_id: i64,
    pub device_id: String,
    crypto: Crypto,
    identities: HashMap<String, String>,
    plaintexts: BTreeMap<i64, Value>,
    dir: Option<PathBuf>,
    key: [u8; 32],
}

fn peer_key(user: i64, device: &str) -> String {
    format!("{user}:{device}")
}

impl Client {
    async fn create(server: &str, dir: Option<&Path>, login: TokenResponse) -> anyhow::Result<Self> {
        let mut api = Api::new(server);
        api.token = Some(login.access_token);
        let key = match dir {
            Some(d) => store::key(d)?,
            None => crate::crypto::random(),
        };
        let mut client = Self {
            api,
            user_id: login.user_id,
            device_id: login.device_id,
            crypto: Crypto::new(),
            identities: HashMap::new(),
            plaintexts: BTreeMap::new(),
            dir: dir.map(Path::to_owned),
            key,
        };
        let body = client.crypto.initial_keys(BATCH);
        client.api.call(UploadKeys, &body).await.context("publish device keys")?;
        client.save()?;
        Ok(client)
    }

    /// Registers an account; this device's keys are generated and published. State goes to `dir` if given.
    pub async fn register(
        server: &str,
        dir: Option<&Path>,
        (first, last, phone): (&str, &str, &str),
        password: &str,
        device_name: &str,
    ) -> anyhow::Result<Self> {
        let request = RegisterRequest {
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            phone: phone.to_owned(),
            password: password.to_owned(),
            public_key: None,
            device_name: Some(device_name.to_owned()),
        };
        let login = Api::new(server).call(Register, &request).await?;
        Self::create(server, dir, login).await
    }

    /// Logs in as a new device (`login` names the phone or the username) and publishes its keys.
    pub async fn login(
        server: &str,
        dir: Option<&Path>,
        login: LoginAs,
        password: &str,
        device_name: &str,
    ) -> anyhow::Result<Self> {
        let (phone, username) = match login {
            LoginAs::Phone(p) => (Some(p), None),
            LoginAs::Username(u) => (None, Some(u)),
        };
        let request = LoginRequest {
            phone,
            username,
            password: password.to_owned(),
            device_name: Some(device_name.to_owned()),
            device_id: None,
        };
        let session = Api::new(server).call(LoginEndpoint, &request).await?;
        Self::create(server, dir, session).await
    }

    /// Opens the device stored in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let (saved, key) = store::load(dir)?;
        let mut api = Api::new(&saved.server);
        api.token = Some(saved.token);
        let sessions =
            saved.sessions.into_iter().map(|(k, v)| (k, v.into_iter().map(Session::from_pickle).collect())).collect();
        Ok(Self {
            api,
            user_id: saved.user_id,
            device_id: saved.device_id,
            crypto: Crypto { account: Account::from_pickle(saved.account), sessions, next_key_id: saved.next_key_id },
            identities: saved.identities,
            plaintexts: saved.plaintexts,
            dir: Some(dir.to_owned()),
            key,
        })
    }

    /// Persists the state (a no-op for clients without a directory).
    pub fn save(&self) -> anyhow::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let saved = Saved {
            server: self.api.base.clone(),
            user_id: self.user_id,
            device_id: self.device_id.clone(),
            token: self.api.token.clone().unwrap_or_default(),
            account: self.crypto.account.pickle(),
            sessions: self
                .crypto
                .sessions
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(Session::pickle).collect()))
                .collect(),
            next_key_id: self.crypto.next_key_id,
            identities: self.identities.clone(),
            plaintexts: self.plaintexts.clone(),
        };
        store::save(dir, &self.key, &saved)
    }

    /// Opens a WebSocket connection.
    pub async fn connect(&self) -> anyhow::Result<Socket> {
        let token = self.api.token.clone().unwrap_or_default();
        let (stream, _) = tokio_tungstenite::connect_async(format!("{}?token={token}", self.api.ws_url())).await?;
        Ok(Socket { stream, pending: VecDeque::new() })
    }

    /// Uploads more one-time keys when fewer than 20 remain.
    pub async fn top_up_keys(&mut self) -> anyhow::Result<()> {
        let count = self.api.call(CountKeys, &Empty {}).await?.one_time_key_count;
        if count < LOW_WATER {
            let body = self.crypto.one_time_keys(BATCH);
            self.api.call(UploadKeys, &body).await?;
            self.save()?;
        }
        Ok(())
    }

    /// Verified keys of a user's devices; pins identities and forgets sessions of devices whose identity
    /// changed. Returns (devices, changed device ids).
    async fn devices_of(&mut self, user: i64) -> anyhow::Result<(Vec<DeviceKeys>, Vec<String>)> {
        let list = self.api.call(ListDevices, &ListDevicesRequest { user_id: user }).await?;
        let mut out = Vec::new();
        let mut changed = Vec::new();
        for entry in &list {
            let Ok(keys) = DeviceKeys::verified(entry) else { continue };
            let peer = peer_key(user, &keys.device_id);
            let identity = b64(&keys.identity_key.to_bytes());
            if let Some(pinned) = self.identities.get(&peer)
                && pinned != &identity
            {
                self.crypto.sessions.remove(&peer);
                changed.push(keys.device_id.clone());
            }
            self.identities.insert(peer, identity);
            out.push(keys);
        }
        Ok((out, changed))
    }

    /// Encrypts `payload` for every device of `to` and this user's other devices and sends it.
    async fn send_payload(
        &mut self,
        socket: &mut Socket,
        to: i64,
        payload: &Value,
        message_type: MessageType,
        media: Option<&str>,
    ) -> anyhow::Result<i64> {
        let mut envelopes = Vec::new();
        let plain = payload.to_string();
        for user in [to, self.user_id] {
            let (devices, _) = self.devices_of(user).await?;
            let targets: Vec<DeviceKeys> =
                devices.into_iter().filter(|d| !(user == self.user_id && d.device_id == self.device_id)).collect();
            let missing: Vec<String> = targets
                .iter()
                .filter(|d| !self.crypto.has_session(&peer_key(user, &d.device_id)))
                .map(|d| d.device_id.clone())
                .collect();
            if !missing.is_empty() {
                let request = ClaimKeysRequest { user_id: user, device_ids: Some(missing) };
                let claimed = self.api.call(ClaimKeys, &request).await?;
                for entry in &claimed.devices {
                    let device = entry.device_id.clone();
                    let peer = peer_key(user, &device);
                    let keys = self.crypto.start_session(&peer, entry)?;
                    if self.identities.get(&peer).is_some_and(|p| p != &b64(&keys.identity_key.to_bytes())) {
                        bail!("identity of device {device} changed between listing and claiming");
                    }
                }
            }
            for d in targets {
                let peer = peer_key(user, &d.device_id);
                if self.crypto.has_session(&peer) {
                    let ciphertext = self.crypto.encrypt(&peer, plain.as_bytes())?;
                    envelopes.push(Envelope { user_id: user, device_id: d.device_id, ciphertext });
                }
            }
        }
        let client_msg_id = uuid::Uuid::new_v4().to_string();
        let frame = ClientAction::SendMessage(SendMessage {
            receiver_id: Some(LooseId::Int(to)),
            encrypted_content: Some(MARKER.to_owned()),
            message_type: Some(message_type),
            media_url: media.map(str::to_owned),
            reply_to_message_id: None,
            client_msg_id: Some(client_msg_id.clone()),
            envelopes: Some(envelopes),
        });
        socket.send(&frame).await?;
        // Session state advanced: persist before waiting.
        self.save()?;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), socket.read())
                .await
                .map_err(|_| anyhow!("no acknowledgement from the server"))??
                .ok_or_else(|| anyhow!("connection closed before the acknowledgement"))?;
            match event {
                ServerEvent::MessageSent(sent) if sent.client_msg_id.as_deref() == Some(client_msg_id.as_str()) => {
                    self.plaintexts.insert(sent.message_id, payload.clone());
                    self.save()?;
                    return Ok(sent.message_id);
                }
                ServerEvent::Error(e) if e.client_msg_id.as_deref() == Some(client_msg_id.as_str()) => {
                    bail!("{}", e.message)
                }
                other => socket.pending.push_back(other),
            }
        }
    }

    /// Sends an end-to-end encrypted text.
    pub async fn send_text(&mut self, socket: &mut Socket, to: i64, text: &str) -> anyhow::Result<i64> {
        self.send_payload(socket, to, &json!({"v": 1, "text": text}), MessageType::Text, None).await
    }

    /// Encrypts a file with a fresh key, uploads the ciphertext through a presigned PUT and sends the key
    /// inside the end-to-end encrypted message.
    pub async fn send_file(&mut self, socket: &mut Socket, to: i64, name: &str, bytes: &[u8]) -> anyhow::Result<i64> {
        let (sealed, key, nonce) = seal_file(bytes)?;
        let request = PresignRequest { size: i64::try_from(sealed.len())?, content_type: None };
        let presigned = self.api.call(PresignUpload, &request).await?;
        self.api.put_presigned(&presigned.upload_url, &presigned.headers, sealed).await?;
        let object = presigned.key;
        let payload =
            json!({"v": 1, "file": {"name": name, "size": bytes.len(), "key": b64(&key), "nonce": b64(&nonce)}});
        self.send_payload(socket, to, &payload, MessageType::File, Some(&object)).await
    }

    /// Downloads and decrypts an attachment.
    pub async fn download(&self, file: &FileRef) -> anyhow::Result<Vec<u8>> {
        let url = file.media_url.as_deref().ok_or_else(|| anyhow!("the attachment is gone"))?;
        let sealed = self.api.download(url).await?;
        open_file(&sealed, &unb64(&file.key)?, &unb64(&file.nonce)?)
    }

    /// The identity key of a sender device (pinned, or fetched and verified).
    async fn identity_of(&mut self, user: i64, device: &str) -> anyhow::Result<Curve25519PublicKey> {
        let peer = peer_key(user, device);
        if !self.identities.contains_key(&peer) {
            self.devices_of(user).await?;
        }
        let pinned = self.identities.get(&peer).ok_or_else(|| anyhow!("unknown device {device}"))?;
        Ok(Curve25519PublicKey::from_bytes(unb64(pinned)?.try_into().map_err(|_| anyhow!("bad identity key"))?))
    }

    /// Turns a message object (live or from history) into what this device can read.
    async fn receive(&mut self, m: &wire::Message) -> anyhow::Result<Received> {
        let id = m.id;
        let sender = m.sender_id;
        let sender_device = m.sender_device_id.clone();
        let payload = match (self.plaintexts.get(&id).cloned(), m.envelope.as_deref(), &sender_device) {
            (Some(p), _, _) => Some(p),
            (None, Some(envelope), Some(device)) => {
                let identity = self.identity_of(sender, device).await?;
                match self.crypto.decrypt(&peer_key(sender, device), identity, envelope) {
                    Ok(plain) => {
                        let payload: Value = serde_json::from_slice(&plain).unwrap_or(Value::Null);
                        self.plaintexts.insert(id, payload.clone());
                        self.save()?;
                        Some(payload)
                    }
                    Err(_) => None,
                }
            }
            _ => None,
        };
        let file = payload.as_ref().and_then(|p| p.get("file")).map(|f| FileRef {
            name: f["name"].as_str().unwrap_or("file").to_owned(),
            size: f["size"].as_u64().unwrap_or(0),
            key: f["key"].as_str().unwrap_or_default().to_owned(),
            nonce: f["nonce"].as_str().unwrap_or_default().to_owned(),
            media_url: m.media_url.clone(),
        });
        Ok(Received {
            message_id: id,
            sender_id: sender,
            receiver_id: m.receiver_id,
            sender_device_id: sender_device,
            text: payload.as_ref().and_then(|p| p["text"].as_str()).map(str::to_owned),
            file,
            undecryptable: payload.is_none(),
        })
    }

    /// Interprets one server event: decrypts messages, tracks key changes.
    pub async fn handle(&mut self, event: ServerEvent) -> anyhow::Result<Event> {
        match event {
            ServerEvent::NewMessage(m) => Ok(Event::Message(self.receive(&m).await?)),
            ServerEvent::KeyChange(k) => {
                let (user_id, device_id) = (k.user_id, k.device_id);
                let change = k.change.as_str().to_owned();
                if k.change != wire::ws::KeyChangeKind::Added {
                    let peer = peer_key(user_id, &device_id);
                    self.crypto.sessions.remove(&peer);
                    self.identities.remove(&peer);
                    self.save()?;
                }
                Ok(Event::KeyChange { user_id, device_id, change })
            }
            other => Ok(Event::Other(other)),
        }
    }

    /// The conversation with `peer` (up to 200 newest messages), decrypted where this device can.
    pub async fn history(&mut self, peer: i64) -> anyhow::Result<Vec<Received>> {
        let request = ListMessagesRequest { target_user_id: peer, limit: Some(200), before_id: None, after_id: None };
        let page = self.api.call(ListMessages, &request).await?;
        let mut out = Vec::new();
        for m in &page {
            out.push(self.receive(m).await?);
        }
        Ok(out)
    }

    /// This user's devices as the directory lists them.
    pub async fn devices(&self) -> anyhow::Result<Vec<Device>> {
        self.api.call(ListDevices, &ListDevicesRequest { user_id: self.user_id }).await
    }
}

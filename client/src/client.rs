//! The high-level client: register/login with key publishing, encrypted send, decrypting receive, history.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
use wire::keys::{
    ClaimKeys, ClaimKeysRequest, ClaimedDevice, CountKeys, Device, ListDevices, ListDevicesRequest, UploadKeys,
};
use wire::mls::{CountKeyPackages, UploadKeyPackages, UploadKeyPackagesRequest};
use wire::users::{DeleteAccount, DeleteAccountRequest};
use wire::ws::{ClientAction, Envelope, LooseId, SendMessage, ServerEvent};
use wire::{MessageType, TokenResponse};

use crate::api::Api;
use crate::crypto::{Crypto, DeviceKeys, b64, open_file, seal_file, unb64};
use crate::mls::Mls;
use crate::store::{self, Home, Saved};

/// Marker put in `encrypted_content` of end-to-end encrypted messages (the real content is in envelopes).
pub const MARKER: &str = "e2ee:v1";
/// Marker of a session-reset request: a message whose only envelope starts a fresh Olm session with the
/// device that sent something this device could not decrypt. Clients do not show these messages.
pub const RESET_MARKER: &str = "e2ee:v1:session-reset";
/// One-time keys published at a time.
const BATCH: usize = 50;
/// Top up when fewer than this many remain on the server.
const LOW_WATER: i64 = 20;
/// Pages of 200 messages a catch-up reads at most before a send.
const CATCH_UP_PAGES: usize = 10;

fn reset_payload() -> Value {
    json!({"v": 1, "control": "session-reset"})
}

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
    /// True when decryption failed and this device asked the sender's device for a fresh session.
    pub session_reset: bool,
}

/// What a server event means to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A decrypted (or undecryptable) message.
    Message(Received),
    /// A device of a user was added, changed its identity or was removed.
    KeyChange { user_id: i64, device_id: String, change: String },
    /// A device that could not decrypt one of this device's messages started a fresh session with it; the
    /// next messages use that session.
    SessionRenewed { user_id: i64, device_id: String },
    /// This device joined a group (from a welcome).
    GroupJoined { group_id: i64, name: Option<String> },
    /// A commit moved a group to `epoch` (merged here).
    GroupCommit { group_id: i64, epoch: i64, sender_id: i64 },
    /// A commit removed this device from a group.
    GroupRemoved { group_id: i64 },
    /// A group message.
    GroupMessage(GroupReceived),
    /// A group was renamed (`name`: `Some`) or devices left it (`left`, `"<user>:<device>"`).
    GroupUpdated { group_id: i64, name: Option<Option<String>>, left: Vec<String> },
    /// Any other event, as sent.
    Other(ServerEvent),
}

mod groups;

pub use groups::GroupReceived;

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

    /// Waits for the acknowledgement (`message_sent` or `group_message_sent`) of the frame sent with
    /// `client_msg_id`, or its `error`; other events are kept for later. Returns the message id.
    async fn acknowledgement(&mut self, client_msg_id: &str) -> anyhow::Result<i64> {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), self.read())
                .await
                .map_err(|_| anyhow!("no acknowledgement from the server"))??
                .ok_or_else(|| anyhow!("connection closed before the acknowledgement"))?;
            match event {
                ServerEvent::MessageSent(sent) if sent.client_msg_id.as_deref() == Some(client_msg_id) => {
                    return Ok(sent.message_id);
                }
                ServerEvent::GroupMessageSent(sent) if sent.client_msg_id.as_deref() == Some(client_msg_id) => {
                    return Ok(sent.message_id);
                }
                ServerEvent::Error(e) if e.client_msg_id.as_deref() == Some(client_msg_id) => bail!("{}", e.message),
                other => self.pending.push_back(other),
            }
        }
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
    mls: Mls,
    /// The groups this device is in: server id → MLS group id (base64).
    groups: BTreeMap<i64, String>,
    identities: HashMap<String, String>,
    plaintexts: BTreeMap<i64, Value>,
    resets: HashMap<String, i64>,
    synced: HashMap<i64, i64>,
    home: Option<Home>,
    key: [u8; 32],
}

fn peer_key(user: i64, device: &str) -> String {
    format!("{user}:{device}")
}

fn refuse_occupied(home: Option<&Home>) -> anyhow::Result<()> {
    match home {
        Some(h) if h.has_device() => {
            bail!("{} already holds a device; use another home for another account or device", h.dir().display())
        }
        _ => Ok(()),
    }
}

impl Client {
    async fn create(server: &str, home: Option<Home>, login: TokenResponse) -> anyhow::Result<Self> {
        let mut api = Api::new(server);
        api.token = Some(login.access_token);
        let key = match &home {
            Some(h) => h.key()?,
            None => crate::crypto::random(),
        };
        let mut client = Self {
            api,
            user_id: login.user_id,
            device_id: login.device_id,
            crypto: Crypto::new(),
            mls: Mls::default(),
            groups: BTreeMap::new(),
            identities: HashMap::new(),
            plaintexts: BTreeMap::new(),
            resets: HashMap::new(),
            synced: HashMap::new(),
            home,
            key,
        };
        let body = client.crypto.initial_keys(BATCH);
        client.api.call(UploadKeys, &body).await.context("publish device keys")?;
        client.save()?;
        client.top_up_key_packages().await.context("publish MLS key packages")?;
        Ok(client)
    }

    /// Registers an account; this device's keys are generated and published. State goes to `home` if given.
    pub async fn register(
        server: &str,
        home: Option<Home>,
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
        refuse_occupied(home.as_ref())?;
        let login = Api::new(server).call(Register, &request).await?;
        Self::create(server, home, login).await
    }

    /// Logs in as a new device (`login` names the phone or the username) and publishes its keys.
    pub async fn login(
        server: &str,
        home: Option<Home>,
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
        refuse_occupied(home.as_ref())?;
        let session = Api::new(server).call(LoginEndpoint, &request).await?;
        Self::create(server, home, session).await
    }

    /// Opens the device stored in a (locked) home.
    pub fn open(home: Home) -> anyhow::Result<Self> {
        let (saved, key) = store::load(&home)?;
        let mut api = Api::new(&saved.server);
        api.token = Some(saved.token);
        let sessions =
            saved.sessions.into_iter().map(|(k, v)| (k, v.into_iter().map(Session::from_pickle).collect())).collect();
        Ok(Self {
            api,
            user_id: saved.user_id,
            device_id: saved.device_id,
            crypto: Crypto { account: Account::from_pickle(saved.account), sessions, next_key_id: saved.next_key_id },
            mls: Mls::import(&saved.mls).context("restore the MLS state")?,
            groups: saved.groups,
            identities: saved.identities,
            plaintexts: saved.plaintexts,
            resets: saved.resets,
            synced: saved.synced,
            home: Some(home),
            key,
        })
    }

    /// The home this device lives in, if it has one.
    pub fn home(&self) -> Option<&Home> {
        self.home.as_ref()
    }

    /// Persists the state (a no-op for clients without a home).
    pub fn save(&self) -> anyhow::Result<()> {
        let Some(home) = &self.home else { return Ok(()) };
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
            mls: self.mls.export(),
            groups: self.groups.clone(),
            identities: self.identities.clone(),
            plaintexts: self.plaintexts.clone(),
            resets: self.resets.clone(),
            synced: self.synced.clone(),
        };
        store::save(home, &self.key, &saved)
    }

    /// Opens a WebSocket connection.
    pub async fn connect(&self) -> anyhow::Result<Socket> {
        let token = self.api.token.clone().unwrap_or_default();
        let (stream, _) = tokio_tungstenite::connect_async(self.api.ws_request(&token)?).await?;
        Ok(Socket { stream, pending: VecDeque::new() })
    }

    /// Uploads more one-time keys when fewer than 20 remain, and MLS key packages likewise.
    pub async fn top_up_keys(&mut self) -> anyhow::Result<()> {
        let count = self.api.call(CountKeys, &Empty {}).await?.one_time_key_count;
        if count < LOW_WATER {
            let body = self.crypto.one_time_keys(BATCH);
            self.api.call(UploadKeys, &body).await?;
            self.save()?;
        }
        self.top_up_key_packages().await
    }

    /// Uploads MLS key packages when fewer than 20 remain, and a last-resort package when there is none. The
    /// private keys are saved before the upload: a package the server hands out must be usable here.
    pub async fn top_up_key_packages(&mut self) -> anyhow::Result<()> {
        let state = self.api.call(CountKeyPackages, &Empty {}).await?;
        let want = if state.key_package_count < LOW_WATER { BATCH } else { 0 };
        if want == 0 && state.has_last_resort {
            return Ok(());
        }
        let account = &self.crypto.account;
        let packages = (0..want)
            .map(|_| self.mls.key_package(account, self.user_id, &self.device_id, false))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let last_resort =
            (!state.has_last_resort).then(|| self.mls.key_package(account, self.user_id, &self.device_id, true));
        let body = UploadKeyPackagesRequest {
            key_packages: (!packages.is_empty()).then_some(packages),
            last_resort: last_resort.transpose()?,
        };
        self.save()?;
        self.api.call(UploadKeyPackages, &body).await?;
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
        // A session-reset request from `to` must be taken in before encrypting with the session it replaces.
        self.catch_up(socket, to).await?;
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
                    self.start_session(user, entry)?;
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
        let id = self.send_frame(socket, to, MARKER, message_type, media, envelopes).await?;
        self.plaintexts.insert(id, payload.clone());
        self.save()?;
        Ok(id)
    }

    /// Starts an outbound session from a claimed key, refusing an identity other than the pinned one.
    fn start_session(&mut self, user: i64, entry: &ClaimedDevice) -> anyhow::Result<()> {
        let peer = peer_key(user, &entry.device_id);
        let keys = self.crypto.start_session(&peer, entry)?;
        if self.identities.get(&peer).is_some_and(|p| p != &b64(&keys.identity_key.to_bytes())) {
            self.crypto.sessions.get_mut(&peer).map(|s| s.remove(0));
            bail!("identity of device {} changed between listing and claiming", entry.device_id);
        }
        Ok(())
    }

    /// Sends one `send_message` frame and waits for its acknowledgement; other events are kept for later.
    async fn send_frame(
        &mut self,
        socket: &mut Socket,
        to: i64,
        marker: &str,
        message_type: MessageType,
        media: Option<&str>,
        envelopes: Vec<Envelope>,
    ) -> anyhow::Result<i64> {
        let client_msg_id = uuid::Uuid::new_v4().to_string();
        let frame = ClientAction::SendMessage(SendMessage {
            receiver_id: Some(LooseId::Int(to)),
            encrypted_content: Some(marker.to_owned()),
            message_type: Some(message_type),
            media_url: media.map(str::to_owned),
            reply_to_message_id: None,
            client_msg_id: Some(client_msg_id.clone()),
            envelopes: Some(envelopes),
        });
        // Session state advanced: persist before the frame leaves, so a crash cannot reuse a ratchet step.
        self.save()?;
        socket.send(&frame).await?;
        socket.acknowledgement(&client_msg_id).await
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
            session_reset: false,
        })
    }

    /// Takes in a session-reset request addressed to this device: decrypting its pre-key message creates
    /// the new session, which becomes the newest one with that device. True if this call took it in.
    async fn accept_reset(&mut self, m: &wire::Message) -> anyhow::Result<bool> {
        let (Some(envelope), Some(device)) = (m.envelope.as_deref(), m.sender_device_id.as_deref()) else {
            return Ok(false);
        };
        if self.plaintexts.contains_key(&m.id) {
            return Ok(false);
        }
        let identity = self.identity_of(m.sender_id, device).await?;
        if self.crypto.decrypt(&peer_key(m.sender_id, device), identity, envelope).is_err() {
            return Ok(false);
        }
        self.plaintexts.insert(m.id, reset_payload());
        self.save()?;
        Ok(true)
    }

    /// After a message from a peer device could not be decrypted: starts a fresh session with that device
    /// from a newly claimed key and sends it a session-reset request, unless one was sent after the message.
    async fn request_reset(&mut self, socket: &mut Socket, m: &wire::Message) -> anyhow::Result<bool> {
        let Some(device) = m.sender_device_id.clone() else { return Ok(false) };
        let peer = peer_key(m.sender_id, &device);
        if self.resets.get(&peer).is_some_and(|&last| last > m.id) {
            return Ok(false);
        }
        let request = ClaimKeysRequest { user_id: m.sender_id, device_ids: Some(vec![device.clone()]) };
        let claimed = self.api.call(ClaimKeys, &request).await?;
        let Some(entry) = claimed.devices.iter().find(|d| d.device_id == device) else { return Ok(false) };
        self.start_session(m.sender_id, entry)?;
        let ciphertext = self.crypto.encrypt(&peer, reset_payload().to_string().as_bytes())?;
        let envelopes = vec![Envelope { user_id: m.sender_id, device_id: device, ciphertext }];
        let conversation = if m.sender_id == self.user_id { m.receiver_id } else { m.sender_id };
        let id = self.send_frame(socket, conversation, RESET_MARKER, MessageType::Text, None, envelopes).await?;
        self.resets.insert(peer, id);
        self.plaintexts.insert(id, reset_payload());
        self.save()?;
        Ok(true)
    }

    /// Takes in every message of the conversation with `peer` this device has not seen yet (session-reset
    /// requests included), as if they had arrived live.
    async fn catch_up(&mut self, socket: &mut Socket, peer: i64) -> anyhow::Result<()> {
        for _ in 0..CATCH_UP_PAGES {
            let after_id = self.synced.get(&peer).copied();
            let request = ListMessagesRequest { target_user_id: peer, limit: Some(200), before_id: None, after_id };
            let page = self.api.call(ListMessages, &request).await?;
            let Some(last) = page.last().map(|m| m.id) else { break };
            let full = page.len() == 200;
            for m in page {
                self.handle(socket, ServerEvent::NewMessage(m)).await?;
            }
            self.synced.insert(peer, last);
            self.save()?;
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Interprets one server event: decrypts messages (asking the sender's device for a fresh session
    /// when that fails), takes in session resets, tracks key changes.
    pub async fn handle(&mut self, socket: &mut Socket, event: ServerEvent) -> anyhow::Result<Event> {
        match event {
            ServerEvent::NewMessage(m) if m.encrypted_content == RESET_MARKER => {
                if self.accept_reset(&m).await? {
                    let device_id = m.sender_device_id.clone().unwrap_or_default();
                    return Ok(Event::SessionRenewed { user_id: m.sender_id, device_id });
                }
                Ok(Event::Other(ServerEvent::NewMessage(m)))
            }
            ServerEvent::NewMessage(m) => {
                let mut received = self.receive(&m).await?;
                if received.undecryptable && m.envelope.is_some() {
                    // Best effort: a refused request (a peer's privacy settings, a removed device) must not
                    // stop the caller from reading the next messages.
                    received.session_reset = self.request_reset(socket, &m).await.unwrap_or(false);
                }
                Ok(Event::Message(received))
            }
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
            other => self.handle_group(other).await,
        }
    }

    /// The conversation with `peer` (up to 200 newest messages), decrypted where this device can.
    pub async fn history(&mut self, peer: i64) -> anyhow::Result<Vec<Received>> {
        let request = ListMessagesRequest { target_user_id: peer, limit: Some(200), before_id: None, after_id: None };
        let page = self.api.call(ListMessages, &request).await?;
        let mut out = Vec::new();
        for m in page.iter().filter(|m| m.encrypted_content != RESET_MARKER) {
            out.push(self.receive(m).await?);
        }
        Ok(out)
    }

    /// This user's devices as the directory lists them.
    pub async fn devices(&self) -> anyhow::Result<Vec<Device>> {
        self.api.call(ListDevices, &ListDevicesRequest { user_id: self.user_id }).await
    }

    /// Deletes the account on the server (`DELETE /users/me`, which needs the password).
    pub async fn delete_account(&self, password: &str) -> anyhow::Result<()> {
        self.api.call(DeleteAccount, &DeleteAccountRequest { password: password.to_owned() }).await?;
        Ok(())
    }
}

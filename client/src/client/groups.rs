//! Group chats with MLS (API.md §15) on a [`Client`]: create, add, remove, leave, send, and the events that
//! keep this device's MLS state in step with the server's order of commits.
//!
//! The MLS group state lives in the device's `openmls` store (saved with the device); `groups` maps the
//! server's group ids to MLS group ids. A commit refused with `409 stale_epoch` is dropped, the commits it
//! missed are fetched and merged, and it is made again.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context as _, anyhow, bail};
use openmls::prelude::{BasicCredential, GroupId, MlsGroup};
use openmls_traits::OpenMlsProvider as _;
use wire::Empty;
use wire::mls::{
    AckWelcome, AckWelcomeRequest, ClaimKeyPackages, ClaimKeyPackagesRequest, CommitGroup, CommitRequest, CreateGroup,
    CreateGroupRequest, GetGroup, GetGroupRequest, Group, GroupMessage, GroupSummary, LeaveGroup, LeaveGroupRequest,
    ListCommits, ListCommitsRequest, ListGroups, ListGroupsRequest, ListWelcomes, MemberDevice,
};
use wire::ws::{ClientAction, LooseId, SendGroupMessage, ServerEvent};

use super::{Client, Event, Socket, peer_key};
use crate::crypto::{b64, random, unb64};

/// Attempts at a commit that keeps losing its epoch to others.
const COMMIT_ATTEMPTS: usize = 5;

/// A group message as this device sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReceived {
    pub group_id: i64,
    pub message_id: i64,
    pub sender_id: i64,
    pub sender_device_id: String,
    /// The text, when this device could decrypt it.
    pub text: Option<String>,
}

/// The `"<user_id>:<device_id>"` of a leaf credential.
fn leaf_of(credential: &openmls::prelude::Credential) -> Option<(i64, String)> {
    let identity = BasicCredential::try_from(credential.clone()).ok()?;
    let text = std::str::from_utf8(identity.identity()).ok()?;
    let (user, device) = text.split_once(':')?;
    Some((user.parse().ok()?, device.to_owned()))
}

impl Client {
    fn mls_group(&self, id: i64) -> anyhow::Result<MlsGroup> {
        let group_id = self.groups.get(&id).ok_or_else(|| anyhow!("this device is not in group {id}"))?;
        let group_id = GroupId::from_slice(&unb64(group_id)?);
        MlsGroup::load(self.mls.storage(), &group_id)
            .map_err(|e| anyhow!("load group {id}: {e:?}"))?
            .ok_or_else(|| anyhow!("no MLS state for group {id}"))
    }

    /// Creates a group with this device as its admin.
    pub async fn group_create(&mut self, name: Option<&str>) -> anyhow::Result<Group> {
        let group_id = random::<16>();
        let account = &self.crypto.account;
        self.mls.create_group(account, self.user_id, &self.device_id, &group_id)?;
        let request = CreateGroupRequest { group_id: b64(&group_id), name: name.map(str::to_owned) };
        let group = self.api.call(CreateGroup, &request).await?;
        self.groups.insert(group.id, b64(&group_id));
        self.save()?;
        Ok(group)
    }

    /// The groups of this account.
    pub async fn group_list(&self) -> anyhow::Result<Vec<GroupSummary>> {
        self.api.call(ListGroups, &ListGroupsRequest { limit: Some(100), before: None }).await
    }

    /// Fetches and merges the commits this device has not seen.
    pub async fn group_sync(&mut self, id: i64) -> anyhow::Result<()> {
        let mut group = self.mls_group(id)?;
        loop {
            let after = i64::try_from(group.epoch().as_u64())?;
            let commits = self.api.call(ListCommits, &ListCommitsRequest { id, after_epoch: Some(after) }).await?;
            if commits.is_empty() {
                break;
            }
            for c in commits {
                if i64::try_from(group.epoch().as_u64())? >= c.epoch {
                    continue;
                }
                self.mls
                    .process(&mut group, &c.commit)
                    .with_context(|| format!("merge the commit of epoch {}", c.epoch))?;
            }
        }
        self.save()
    }

    /// The leaves the group's tree holds that the server no longer routes to (pending removals): the next
    /// commit must remove them.
    async fn pending_removals(&self, id: i64, group: &MlsGroup) -> anyhow::Result<Vec<MemberDevice>> {
        let routed: BTreeSet<String> =
            self.api.call(GetGroup, &GetGroupRequest { id }).await?.members.into_iter().map(|m| m.device_id).collect();
        Ok(group
            .members()
            .filter_map(|m| leaf_of(&m.credential))
            .filter(|(_, device)| !routed.contains(device))
            .map(|(user_id, device_id)| MemberDevice { user_id, device_id })
            .collect())
    }

    /// Makes a commit with `make` and posts it, retrying after merging what it missed when another commit
    /// won the epoch; returns the new epoch.
    async fn commit_with(&mut self, id: i64, mut make: impl AsyncCommit) -> anyhow::Result<i64> {
        for _ in 0..COMMIT_ATTEMPTS {
            self.group_sync(id).await?;
            let mut group = self.mls_group(id)?;
            let request = make.make(self, id, &mut group).await?;
            // The pending commit's keys are in the store: save before the server can accept it.
            self.save()?;
            match self.api.call(CommitGroup, &request).await {
                Ok(accepted) => {
                    group.merge_pending_commit(&self.mls).map_err(|e| anyhow!("merge own commit: {e:?}"))?;
                    self.save()?;
                    return Ok(accepted.epoch);
                }
                Err(e) if crate::api::refused_with(&e, wire::ErrorCode::StaleEpoch) => {
                    self.mls.discard_pending(&mut group)?;
                    self.save()?;
                }
                Err(e) => {
                    self.mls.discard_pending(&mut group)?;
                    self.save()?;
                    return Err(e);
                }
            }
        }
        bail!("group {id} kept moving on; try again")
    }

    /// Adds every device of `users` that has a key package; returns the new epoch. Leaves that left the
    /// group's routing (pending removals) are removed by a commit of their own first.
    pub async fn group_add(&mut self, id: i64, users: &[i64]) -> anyhow::Result<i64> {
        self.group_sync(id).await?;
        let group = self.mls_group(id)?;
        if !self.pending_removals(id, &group).await?.is_empty() {
            self.commit_with(id, Remove(None)).await?;
        }
        self.commit_with(id, Add(users.to_vec())).await
    }

    /// Removes every device of `user` from the group (and the pending removals); returns the new epoch.
    pub async fn group_remove(&mut self, id: i64, user: i64) -> anyhow::Result<i64> {
        self.commit_with(id, Remove(Some(user))).await
    }

    /// Leaves the group with every device of this account.
    pub async fn group_leave(&mut self, id: i64) -> anyhow::Result<()> {
        self.api.call(LeaveGroup, &LeaveGroupRequest { id }).await?;
        self.groups.remove(&id);
        self.save()
    }

    /// Encrypts and sends a text to a group; returns the message id.
    pub async fn group_send(&mut self, socket: &mut Socket, id: i64, text: &str) -> anyhow::Result<i64> {
        self.group_send_as(socket, id, text, &uuid::Uuid::new_v4().to_string()).await
    }

    /// [`Client::group_send`] with the caller's `client_msg_id` (a retry with the same one is stored once).
    pub async fn group_send_as(
        &mut self,
        socket: &mut Socket,
        id: i64,
        text: &str,
        client_msg_id: &str,
    ) -> anyhow::Result<i64> {
        self.group_sync(id).await?;
        let mut group = self.mls_group(id)?;
        let ciphertext = self.mls.encrypt(&self.crypto.account, &mut group, text.as_bytes())?;
        let frame = ClientAction::SendGroupMessage(SendGroupMessage {
            group_id: Some(LooseId::Int(id)),
            ciphertext: Some(ciphertext),
            client_msg_id: Some(client_msg_id.to_owned()),
        });
        self.save()?;
        socket.send(&frame).await?;
        socket.acknowledgement(client_msg_id).await
    }

    /// Joins the groups whose welcomes wait for this device.
    pub async fn group_join_pending(&mut self) -> anyhow::Result<Vec<Group>> {
        let mut joined = Vec::new();
        for w in self.api.call(ListWelcomes, &Empty {}).await? {
            if !self.groups.contains_key(&w.group.id) {
                self.join_welcome(&w.group, &w.welcome)?;
                joined.push(w.group.clone());
            }
            self.api.call(AckWelcome, &AckWelcomeRequest { id: w.id }).await?;
        }
        Ok(joined)
    }

    fn join_welcome(&mut self, group: &Group, welcome: &str) -> anyhow::Result<()> {
        let joined = self.mls.join(welcome)?;
        self.groups.insert(group.id, b64(joined.group_id().as_slice()));
        self.save()
    }

    /// Decrypts a group message, merging missed commits first when it is of a newer epoch.
    async fn group_receive(&mut self, m: &GroupMessage) -> anyhow::Result<GroupReceived> {
        let mut text = None;
        if self.groups.contains_key(&m.group_id) {
            let mut group = self.mls_group(m.group_id)?;
            if i64::try_from(group.epoch().as_u64())? < m.epoch {
                self.group_sync(m.group_id).await?;
                group = self.mls_group(m.group_id)?;
            }
            text = match self.mls.process(&mut group, &m.ciphertext) {
                Ok(Some(bytes)) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                _ => None,
            };
            self.save()?;
        }
        Ok(GroupReceived {
            group_id: m.group_id,
            message_id: m.id,
            sender_id: m.sender_id,
            sender_device_id: m.sender_device_id.clone(),
            text,
        })
    }

    /// Group events: joins from welcomes, merges commits, decrypts messages.
    pub(super) async fn handle_group(&mut self, event: ServerEvent) -> anyhow::Result<Event> {
        match event {
            ServerEvent::GroupWelcome(w) => {
                if !self.groups.contains_key(&w.group.id) {
                    match &w.welcome {
                        Some(welcome) => self.join_welcome(&w.group, welcome)?,
                        None => {
                            self.group_join_pending().await?;
                        }
                    }
                }
                self.api.call(AckWelcome, &AckWelcomeRequest { id: w.welcome_id }).await.ok();
                Ok(Event::GroupJoined { group_id: w.group.id, name: w.group.name.clone() })
            }
            ServerEvent::GroupCommit(c) => {
                if self.groups.contains_key(&c.group_id) {
                    let mut group = self.mls_group(c.group_id)?;
                    let next = i64::try_from(group.epoch().as_u64())? + 1;
                    match &c.commit {
                        Some(commit) if next == c.epoch => {
                            self.mls.process(&mut group, commit)?;
                            self.save()?;
                        }
                        _ => self.group_sync(c.group_id).await?,
                    }
                    if !group.is_active() {
                        self.groups.remove(&c.group_id);
                        self.save()?;
                        return Ok(Event::GroupRemoved { group_id: c.group_id });
                    }
                }
                Ok(Event::GroupCommit { group_id: c.group_id, epoch: c.epoch, sender_id: c.sender_id })
            }
            ServerEvent::NewGroupMessage(m) => Ok(Event::GroupMessage(self.group_receive(&m).await?)),
            ServerEvent::GroupUpdated(u) => Ok(Event::GroupUpdated {
                group_id: u.group_id,
                name: u.name,
                left: u.left.unwrap_or_default().into_iter().map(|d| peer_key(d.user_id, &d.device_id)).collect(),
            }),
            other => Ok(Event::Other(other)),
        }
    }
}

/// One way of making a commit (an async closure over the client, which Rust cannot write yet).
trait AsyncCommit {
    async fn make(&mut self, c: &mut Client, id: i64, group: &mut MlsGroup) -> anyhow::Result<CommitRequest>;
}

/// Adds the devices of users.
struct Add(Vec<i64>);

impl AsyncCommit for Add {
    async fn make(&mut self, c: &mut Client, id: i64, group: &mut MlsGroup) -> anyhow::Result<CommitRequest> {
        let in_tree: BTreeSet<String> =
            group.members().filter_map(|m| leaf_of(&m.credential)).map(|(_, d)| d).collect();
        let mut packages = Vec::new();
        // A claim names at most 50 users.
        for users in self.0.chunks(50) {
            let claimed = c.api.call(ClaimKeyPackages, &ClaimKeyPackagesRequest { user_ids: users.to_vec() }).await?;
            packages.extend(claimed.key_packages.into_iter().filter(|p| !in_tree.contains(&p.device_id)));
        }
        if packages.is_empty() {
            bail!("no device of these users can be added (none has a key package, or all are in the group)");
        }
        let mut directory: HashMap<(i64, String), Vec<u8>> = HashMap::new();
        for user in packages.iter().map(|p| p.user_id).collect::<BTreeSet<_>>() {
            for keys in c.devices_of(user).await?.0 {
                directory.insert((user, keys.device_id.clone()), keys.signing_key.as_bytes().to_vec());
            }
        }
        if !c.pending_removals(id, group).await?.is_empty() {
            // Another device left meanwhile: the retry removes it first.
            bail!("the group has pending removals: try again");
        }
        let (commit, welcome) = c.mls.add(&c.crypto.account, group, &packages, |user, device| {
            directory.get(&(user, device.to_owned())).cloned()
        })?;
        let added =
            packages.iter().map(|p| MemberDevice { user_id: p.user_id, device_id: p.device_id.clone() }).collect();
        Ok(CommitRequest { id, commit, welcome: Some(welcome), added: Some(added), removed: None, role: None })
    }
}

/// Removes every device of a user, if given, and whatever leaves the server no longer routes to.
struct Remove(Option<i64>);

impl AsyncCommit for Remove {
    async fn make(&mut self, c: &mut Client, id: i64, group: &mut MlsGroup) -> anyhow::Result<CommitRequest> {
        let mut removed: Vec<MemberDevice> = c.pending_removals(id, group).await?;
        for (user_id, device_id) in group.members().filter_map(|m| leaf_of(&m.credential)) {
            if Some(user_id) == self.0 && !removed.iter().any(|r| r.device_id == device_id) {
                removed.push(MemberDevice { user_id, device_id });
            }
        }
        if removed.is_empty() {
            bail!("nothing to remove from group {id}");
        }
        let devices: Vec<(i64, String)> = removed.iter().map(|r| (r.user_id, r.device_id.clone())).collect();
        let commit = c.mls.remove(&c.crypto.account, group, &devices)?;
        Ok(CommitRequest { id, commit, welcome: None, added: None, removed: Some(removed), role: None })
    }
}

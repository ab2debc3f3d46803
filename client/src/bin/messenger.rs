//! `messenger`: an end-to-end encrypting command-line client.
//!
//! One home is one device. A command takes the home's lock for as long as it runs; while `listen` holds it,
//! the other commands given to the same home are handed to the listening process over its control socket
//! (a Unix socket in the owner-only home) and run there, so two processes never advance the same Olm
//! sessions. Without a listener, a command waits up to 30 s for the one holding the lock.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use messenger_client::store::{CONTROL_SOCKET, Home, HomeLock};
use messenger_client::{Client, Event, LoginAs, Received, Socket};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// End-to-end encrypted chat from the command line.
///
/// The password comes from MESSENGER_PASSWORD (or is asked on stdin). State lives in --home, encrypted,
/// owner-only; MESSENGER_PASSPHRASE (or --passphrase at register/login) also wraps its key with a passphrase.
#[derive(Debug, Parser)]
#[command(name = "messenger", version)]
struct Cli {
    /// Device state directory.
    #[arg(long, env = "MESSENGER_HOME", global = true)]
    home: Option<PathBuf>,
    /// Server base URL.
    #[arg(long, env = "MESSENGER_SERVER", default_value = "http://127.0.0.1:3000", global = true)]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand, Serialize, Deserialize)]
enum Command {
    /// Create an account; this device's keys are generated and published.
    Register {
        /// First name.
        #[arg(long)]
        first: String,
        /// Last name.
        #[arg(long)]
        last: String,
        /// Phone number.
        #[arg(long)]
        phone: String,
        /// Device name.
        #[arg(long, default_value = "cli")]
        device: String,
        /// Protect the device state with a passphrase (MESSENGER_PASSPHRASE, or asked on stdin).
        #[arg(long)]
        passphrase: bool,
    },
    /// Log in as a new device of an existing account.
    Login {
        /// Phone number.
        #[arg(long, conflicts_with = "username", required_unless_present = "username")]
        phone: Option<String>,
        /// Username.
        #[arg(long)]
        username: Option<String>,
        /// Device name.
        #[arg(long, default_value = "cli")]
        device: String,
        /// Protect the device state with a passphrase (MESSENGER_PASSPHRASE, or asked on stdin).
        #[arg(long)]
        passphrase: bool,
    },
    /// Encrypt and send a message.
    Send {
        /// Receiver's user id.
        to: i64,
        /// The text.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Encrypt a file, upload it, send its key in a message.
    SendFile {
        /// Receiver's user id.
        to: i64,
        /// The file.
        path: PathBuf,
    },
    /// Print decrypted messages and key changes as they arrive; other commands on this home run here.
    Listen,
    /// The conversation, decrypted where this device can.
    History {
        /// The peer's user id.
        peer: i64,
    },
    /// This account's devices.
    Devices,
    /// Group chats, end-to-end encrypted with MLS.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Delete this account and everything of it on the server; asks for the password (MESSENGER_PASSWORD).
    DeleteAccount {
        /// Filled in from the prompt, never from the command line.
        #[arg(skip)]
        password: String,
    },
}

/// `messenger group …`: groups are named by the server's group id (`group list`).
#[derive(Debug, Subcommand, Serialize, Deserialize)]
enum GroupCommand {
    /// Create a group with this device as its admin.
    Create {
        /// A name the server shows to members (leave it out to keep it private).
        #[arg(long)]
        name: Option<String>,
    },
    /// Add every device of these users (admins only).
    Add {
        /// The group.
        group: i64,
        /// User ids.
        #[arg(required = true, num_args = 1..)]
        users: Vec<i64>,
    },
    /// Remove every device of a user (admins only).
    Remove {
        /// The group.
        group: i64,
        /// The user id.
        user: i64,
    },
    /// Leave a group with every device of this account.
    Leave {
        /// The group.
        group: i64,
    },
    /// Encrypt and send a message to a group.
    Send {
        /// The group.
        group: i64,
        /// The text.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// This account's groups.
    List,
}

/// A command handed to the listening process is one JSON line of [`Command`]; this is its answer.
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    output: String,
    error: Option<String>,
}

/// How long a command waits for the home's lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(30);

fn prompt(what: &str) -> anyhow::Result<String> {
    eprint!("{what}: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn password() -> anyhow::Result<String> {
    match std::env::var("MESSENGER_PASSWORD") {
        Ok(p) => Ok(p),
        Err(_) => prompt("password"),
    }
}

fn passphrase() -> anyhow::Result<String> {
    match std::env::var("MESSENGER_PASSPHRASE") {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => prompt("passphrase"),
    }
}

/// The home of a new device, protected when asked to (or when MESSENGER_PASSPHRASE is set).
fn new_home(lock: HomeLock, protect: bool) -> anyhow::Result<Home> {
    let home = Home::from(lock);
    let from_env = std::env::var("MESSENGER_PASSPHRASE").is_ok_and(|p| !p.is_empty());
    Ok(if protect || from_env { home.with_passphrase(passphrase()?) } else { home })
}

/// An existing home, unlocked with its passphrase when it has one.
fn open_home(lock: HomeLock) -> anyhow::Result<Client> {
    let home = Home::from(lock);
    let home = if home.is_protected() { home.with_passphrase(passphrase()?) } else { home };
    Client::open(home)
}

fn show(r: &Received, out: &mut String) {
    let who = format!("user {} ({})", r.sender_id, r.sender_device_id.as_deref().unwrap_or("?"));
    let _ = match (&r.text, &r.file) {
        (_, Some(f)) => writeln!(out, "#{} {who} → file {:?} ({} bytes)", r.message_id, f.name, f.size),
        (Some(t), None) => writeln!(out, "#{} {who}: {t}", r.message_id),
        (None, None) if r.session_reset => writeln!(
            out,
            "#{} {who}: [cannot decrypt on this device] — asked that device for a fresh session; its next \
             messages will be readable",
            r.message_id
        ),
        (None, None) => writeln!(out, "#{} {who}: [cannot decrypt on this device]", r.message_id),
    };
}

/// What became of the home: this process holds it, or the listening process ran the command.
enum Taken {
    Locked(HomeLock),
    HandedOff(Reply),
}

/// Takes the home's lock, handing `command` to a listening process when one holds it.
async fn take_home(home: &Path, command: Option<&Command>) -> anyhow::Result<Taken> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        if let Some(lock) = HomeLock::try_acquire(home)? {
            return Ok(Taken::Locked(lock));
        }
        if let Ok(stream) = UnixStream::connect(home.join(CONTROL_SOCKET)).await {
            let Some(command) = command else {
                bail!("{} is already listening in another process; commands given to it run there", home.display());
            };
            return hand_off(stream, command).await.map(Taken::HandedOff);
        }
        if Instant::now() >= deadline {
            bail!("{}", messenger_client::store::in_use(home));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn hand_off(stream: UnixStream, command: &Command) -> anyhow::Result<Reply> {
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(command)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    serde_json::from_str(&answer).context("the listening process stopped before answering")
}

/// The listener's connection, or a new one.
async fn or_connect<'a>(
    c: &Client,
    socket: Option<&'a mut Socket>,
    own: &'a mut Option<Socket>,
) -> anyhow::Result<&'a mut Socket> {
    match socket {
        Some(s) => Ok(s),
        None => Ok(own.insert(c.connect().await?)),
    }
}

/// Runs a command on an open device; `socket` is the listener's connection when there is one.
async fn execute(c: &mut Client, socket: Option<&mut Socket>, command: Command) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut own = None;
    match command {
        Command::Send { to, text } => {
            let socket = or_connect(c, socket, &mut own).await?;
            let id = c.send_text(socket, to, &text.join(" ")).await?;
            writeln!(out, "sent #{id}")?;
        }
        Command::SendFile { to, path } => {
            let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
            let socket = or_connect(c, socket, &mut own).await?;
            let id = c.send_file(socket, to, &name, &bytes).await?;
            writeln!(out, "sent file #{id} ({} bytes, encrypted)", bytes.len())?;
        }
        Command::History { peer } => {
            for r in c.history(peer).await? {
                show(&r, &mut out);
            }
        }
        Command::Devices => {
            for d in c.devices().await? {
                let this = if d.device_id == c.device_id { " (this device)" } else { "" };
                writeln!(out, "{} {}{this}", d.device_id, d.device_name.as_deref().unwrap_or(""))?;
            }
        }
        Command::Group(group) => group_command(c, socket, group, &mut out).await?,
        Command::DeleteAccount { password } => {
            c.delete_account(&password).await?;
            writeln!(out, "deleted user {}; this home's device can no longer be used", c.user_id)?;
        }
        Command::Register { .. } | Command::Login { .. } | Command::Listen => {
            bail!("this command cannot be handed to a running listener")
        }
    }
    Ok(out)
}

/// Runs a `messenger group …` command.
async fn group_command(
    c: &mut Client,
    socket: Option<&mut Socket>,
    command: GroupCommand,
    out: &mut String,
) -> anyhow::Result<()> {
    // Welcomes that arrived while no listener ran.
    for g in c.group_join_pending().await? {
        writeln!(out, "joined group {} {}", g.id, g.name.as_deref().unwrap_or(""))?;
    }
    match command {
        GroupCommand::Create { name } => {
            let g = c.group_create(name.as_deref()).await?;
            writeln!(out, "created group {}", g.id)?;
        }
        GroupCommand::Add { group, users } => {
            let epoch = c.group_add(group, &users).await?;
            writeln!(out, "added to group {group} (epoch {epoch})")?;
        }
        GroupCommand::Remove { group, user } => {
            let epoch = c.group_remove(group, user).await?;
            writeln!(out, "removed user {user} from group {group} (epoch {epoch})")?;
        }
        GroupCommand::Leave { group } => {
            c.group_leave(group).await?;
            writeln!(out, "left group {group}")?;
        }
        GroupCommand::Send { group, text } => {
            let mut own = None;
            let socket = or_connect(c, socket, &mut own).await?;
            let id = c.group_send(socket, group, &text.join(" ")).await?;
            writeln!(out, "sent #{id} to group {group}")?;
        }
        GroupCommand::List => {
            for g in c.group_list().await? {
                let name = g.name.as_deref().unwrap_or("(unnamed)");
                writeln!(out, "{} {name} — {} devices, epoch {}", g.id, g.member_count, g.epoch)?;
            }
        }
    }
    Ok(())
}

/// Removes the control socket when the listener stops.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Answers one command handed over by another process.
async fn serve(c: &mut Client, socket: &mut Socket, stream: UnixStream) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), BufReader::new(read).read_line(&mut line))
        .await
        .map_err(|_| anyhow!("no command"))??;
    let reply = match serde_json::from_str::<Command>(&line) {
        Ok(command) => match execute(c, Some(socket), command).await {
            Ok(output) => Reply { output, error: None },
            Err(e) => Reply { output: String::new(), error: Some(format!("{e:#}")) },
        },
        Err(e) => Reply { output: String::new(), error: Some(format!("bad request: {e}")) },
    };
    let mut answer = serde_json::to_string(&reply)?;
    answer.push('\n');
    write.write_all(answer.as_bytes()).await?;
    Ok(())
}

async fn listen(home: &Path) -> anyhow::Result<()> {
    let Taken::Locked(lock) = take_home(home, None).await? else { unreachable!("listen is never handed off") };
    let mut c = open_home(lock)?;
    c.top_up_keys().await?;
    let mut socket = c.connect().await?;
    let path = home.join(CONTROL_SOCKET);
    // A socket file left by a listener that died; this process holds the lock, so nobody serves it.
    let _ = std::fs::remove_file(&path);
    let control = UnixListener::bind(&path).with_context(|| format!("listen on {}", path.display()))?;
    let _cleanup = SocketFile(path);
    let downloads = home.join("downloads");
    let mut ping = tokio::time::interval(Duration::from_secs(240));
    eprintln!("listening as user {} on device {} (Ctrl-C to stop)", c.user_id, c.device_id);
    loop {
        let event = tokio::select! {
            e = socket.next_event() => e?,
            _ = ping.tick() => { socket.ping().await?; continue; }
            accepted = control.accept() => {
                if let Ok((stream, _)) = accepted
                    && let Err(e) = serve(&mut c, &mut socket, stream).await
                {
                    eprintln!("a handed-over command failed: {e:#}");
                }
                continue;
            }
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(event) = event else { break };
        let mut out = String::new();
        match c.handle(&mut socket, event).await? {
            Event::Message(r) => {
                show(&r, &mut out);
                if let Some(f) = &r.file {
                    let bytes = c.download(f).await?;
                    std::fs::create_dir_all(&downloads)?;
                    let path = downloads.join(format!("{}-{}", r.message_id, f.name.replace('/', "_")));
                    std::fs::write(&path, bytes)?;
                    writeln!(out, "   saved to {}", path.display())?;
                }
                c.top_up_keys().await?;
            }
            Event::KeyChange { user_id, device_id, change } => {
                writeln!(out, "! security: user {user_id} device {device_id}: {change}")?;
            }
            Event::SessionRenewed { user_id, device_id } => writeln!(
                out,
                "! session: user {user_id} device {device_id} could not decrypt a message from this device and \
                 started a fresh session; the next messages use it"
            )?,
            Event::GroupJoined { group_id, name } => {
                writeln!(out, "! group {group_id}: joined {}", name.as_deref().unwrap_or(""))?;
                c.top_up_keys().await?;
            }
            Event::GroupCommit { group_id, epoch, sender_id } => {
                writeln!(out, "! group {group_id}: epoch {epoch} (commit by user {sender_id})")?;
            }
            Event::GroupRemoved { group_id } => writeln!(out, "! group {group_id}: this device was removed")?,
            Event::GroupMessage(m) => {
                let who = format!("user {} ({})", m.sender_id, m.sender_device_id);
                match &m.text {
                    Some(t) => writeln!(out, "[group {}] #{} {who}: {t}", m.group_id, m.message_id)?,
                    None => writeln!(
                        out,
                        "[group {}] #{} {who}: [cannot decrypt on this device]",
                        m.group_id, m.message_id
                    )?,
                }
            }
            Event::GroupUpdated { group_id, name, left } => {
                if let Some(name) = name {
                    writeln!(out, "! group {group_id}: renamed to {}", name.as_deref().unwrap_or("(unnamed)"))?;
                }
                if !left.is_empty() {
                    writeln!(out, "! group {group_id}: left: {}", left.join(", "))?;
                }
            }
            Event::Other(_) => {}
        }
        print!("{out}");
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = cli
        .home
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".messenger")))
        .ok_or_else(|| anyhow!("set --home"))?;
    let server = cli.server;
    match cli.command {
        Command::Register { first, last, phone, device, passphrase } => {
            let home = new_home(HomeLock::acquire(&home)?, passphrase)?;
            let c = Client::register(&server, Some(home), (&first, &last, &phone), &password()?, &device).await?;
            println!("registered user {} on device {}", c.user_id, c.device_id);
        }
        Command::Login { phone, username, device, passphrase } => {
            let login = match (phone, username) {
                (Some(p), None) => LoginAs::Phone(p),
                (None, Some(u)) => LoginAs::Username(u),
                _ => bail!("give exactly one of --phone or --username"),
            };
            let home = new_home(HomeLock::acquire(&home)?, passphrase)?;
            let c = Client::login(&server, Some(home), login, &password()?, &device).await?;
            println!("logged in as user {} on new device {}", c.user_id, c.device_id);
        }
        Command::Listen => listen(&home).await?,
        mut command => {
            if let Command::SendFile { path, .. } = &mut command {
                // The listening process may run in another directory.
                *path = std::path::absolute(&*path).with_context(|| format!("resolve {}", path.display()))?;
            }
            if let Command::DeleteAccount { password: p } = &mut command {
                // Asked here: a listening process that runs the command has no terminal of its own.
                *p = password()?;
            }
            match take_home(&home, Some(&command)).await? {
                Taken::Locked(lock) => {
                    let mut c = open_home(lock)?;
                    print!("{}", execute(&mut c, None, command).await?);
                }
                Taken::HandedOff(reply) => {
                    print!("{}", reply.output);
                    if let Some(error) = reply.error {
                        eprintln!("messenger: {error}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("messenger: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `messenger`: an end-to-end encrypting command-line client.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use messenger_client::{Client, Event, LoginAs, Received};

/// End-to-end encrypted chat from the command line.
///
/// The password comes from MESSENGER_PASSWORD (or is asked on stdin). State lives in --home, encrypted,
/// owner-only.
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

#[derive(Debug, Subcommand)]
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
    /// Print decrypted messages and key changes as they arrive.
    Listen,
    /// The conversation, decrypted where this device can.
    History {
        /// The peer's user id.
        peer: i64,
    },
    /// This account's devices.
    Devices,
}

fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("MESSENGER_PASSWORD") {
        return Ok(p);
    }
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn show(r: &Received) {
    let who = format!("user {} ({})", r.sender_id, r.sender_device_id.as_deref().unwrap_or("?"));
    match (&r.text, &r.file) {
        (_, Some(f)) => println!("#{} {who} → file {:?} ({} bytes)", r.message_id, f.name, f.size),
        (Some(t), None) => println!("#{} {who}: {t}", r.message_id),
        (None, None) => println!("#{} {who}: [cannot decrypt on this device]", r.message_id),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let home = cli
        .home
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".messenger")))
        .ok_or_else(|| anyhow!("set --home"))?;
    let server = cli.server;
    if matches!(cli.command, Command::Register { .. } | Command::Login { .. }) && home.join("state.bin").exists() {
        bail!("{} already holds a device; use another --home for another account or device", home.display());
    }
    match cli.command {
        Command::Register { first, last, phone, device } => {
            let c = Client::register(&server, Some(&home), (&first, &last, &phone), &password()?, &device).await?;
            println!("registered user {} on device {}", c.user_id, c.device_id);
        }
        Command::Login { phone, username, device } => {
            let login = match (phone, username) {
                (Some(p), None) => LoginAs::Phone(p),
                (None, Some(u)) => LoginAs::Username(u),
                _ => bail!("give exactly one of --phone or --username"),
            };
            let c = Client::login(&server, Some(&home), login, &password()?, &device).await?;
            println!("logged in as user {} on new device {}", c.user_id, c.device_id);
        }
        Command::Send { to, text } => {
            let mut c = Client::open(&home)?;
            let mut socket = c.connect().await?;
            let id = c.send_text(&mut socket, to, &text.join(" ")).await?;
            println!("sent #{id}");
        }
        Command::SendFile { to, path } => {
            let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
            let mut c = Client::open(&home)?;
            let mut socket = c.connect().await?;
            let id = c.send_file(&mut socket, to, &name, &bytes).await?;
            println!("sent file #{id} ({} bytes, encrypted)", bytes.len());
        }
        Command::Listen => {
            let mut c = Client::open(&home)?;
            c.top_up_keys().await?;
            let mut socket = c.connect().await?;
            let downloads = home.join("downloads");
            let mut ping = tokio::time::interval(std::time::Duration::from_secs(240));
            eprintln!("listening as user {} on device {} (Ctrl-C to stop)", c.user_id, c.device_id);
            loop {
                let event = tokio::select! {
                    e = socket.next_event() => e?,
                    _ = ping.tick() => { socket.ping().await?; continue; }
                };
                let Some(event) = event else { break };
                match c.handle(event).await? {
                    Event::Message(r) => {
                        show(&r);
                        if let Some(f) = &r.file {
                            let bytes = c.download(f).await?;
                            std::fs::create_dir_all(&downloads)?;
                            let path = downloads.join(format!("{}-{}", r.message_id, f.name.replace('/', "_")));
                            std::fs::write(&path, bytes)?;
                            println!("   saved to {}", path.display());
                        }
                        c.top_up_keys().await?;
                    }
                    Event::KeyChange { user_id, device_id, change } => {
                        println!("! security: user {user_id} device {device_id}: {change}");
                    }
                    Event::Other(_) => {}
                }
            }
        }
        Command::History { peer } => {
            let mut c = Client::open(&home)?;
            for r in c.history(peer).await? {
                show(&r);
            }
        }
        Command::Devices => {
            let c = Client::open(&home)?;
            for d in c.devices().await? {
                let this = if d.device_id == c.device_id { " (this device)" } else { "" };
                println!("{} {}{this}", d.device_id, d.device_name.as_deref().unwrap_or(""));
            }
        }
    }
    Ok(())
}

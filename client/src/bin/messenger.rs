//! `messenger`: an end-to-end encrypting command-line client.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use messenger_client::{Client, Event, Received};
use serde_json::json;

const HELP: &str = "messenger: end-to-end encrypted chat from the command line

Usage: messenger [--home <dir>] [--server <url>] <command>

Commands:
  register --first <name> --last <name> --phone <phone> [--device <name>]
  login (--phone <phone> | --username <name>) [--device <name>]
  send <user_id> <text...>        encrypt and send a message
  send-file <user_id> <path>      encrypt a file, upload it, send its key in a message
  listen                          print decrypted messages and key changes as they arrive
  history <user_id>               the conversation, decrypted where this device can
  devices                         this account's devices

The password comes from MESSENGER_PASSWORD (or is asked on stdin). State lives in --home
(default ~/.messenger, MESSENGER_HOME), encrypted, owner-only. --server defaults to
http://127.0.0.1:3000 (MESSENGER_SERVER).";

fn flag(args: &mut Vec<String>, name: &str) -> Option<String> {
    let pos = args.iter().position(|a| a == name)?;
    args.remove(pos);
    (pos < args.len()).then(|| args.remove(pos))
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
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{HELP}");
        return Ok(());
    }
    let home = flag(&mut args, "--home")
        .or_else(|| std::env::var("MESSENGER_HOME").ok())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".messenger")))
        .ok_or_else(|| anyhow!("set --home"))?;
    let server = flag(&mut args, "--server")
        .or_else(|| std::env::var("MESSENGER_SERVER").ok())
        .unwrap_or_else(|| "http://127.0.0.1:3000".into());
    let command = args.remove(0);
    if (command == "register" || command == "login") && home.join("state.bin").exists() {
        bail!("{} already holds a device; use another --home for another account or device", home.display());
    }
    match command.as_str() {
        "register" => {
            let first = flag(&mut args, "--first").context("--first is required")?;
            let last = flag(&mut args, "--last").context("--last is required")?;
            let phone = flag(&mut args, "--phone").context("--phone is required")?;
            let device = flag(&mut args, "--device").unwrap_or_else(|| "cli".into());
            let c = Client::register(&server, Some(&home), (&first, &last, &phone), &password()?, &device).await?;
            println!("registered user {} on device {}", c.user_id, c.device_id);
        }
        "login" => {
            let login = match (flag(&mut args, "--phone"), flag(&mut args, "--username")) {
                (Some(p), None) => json!({"phone": p}),
                (None, Some(u)) => json!({"username": u}),
                _ => bail!("give exactly one of --phone or --username"),
            };
            let device = flag(&mut args, "--device").unwrap_or_else(|| "cli".into());
            let c = Client::login(&server, Some(&home), login, &password()?, &device).await?;
            println!("logged in as user {} on new device {}", c.user_id, c.device_id);
        }
        "send" if args.len() >= 2 => {
            let to: i64 = args[0].parse().context("user id")?;
            let mut c = Client::open(&home)?;
            let mut socket = c.connect().await?;
            let id = c.send_text(&mut socket, to, &args[1..].join(" ")).await?;
            println!("sent #{id}");
        }
        "send-file" if args.len() == 2 => {
            let to: i64 = args[0].parse().context("user id")?;
            let path = PathBuf::from(&args[1]);
            let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
            let mut c = Client::open(&home)?;
            let mut socket = c.connect().await?;
            let id = c.send_file(&mut socket, to, &name, &bytes).await?;
            println!("sent file #{id} ({} bytes, encrypted)", bytes.len());
        }
        "listen" => {
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
        "history" if args.len() == 1 => {
            let peer: i64 = args[0].parse().context("user id")?;
            let mut c = Client::open(&home)?;
            for r in c.history(peer).await? {
                show(&r);
            }
        }
        "devices" => {
            let c = Client::open(&home)?;
            for d in c.devices().await?.as_array().into_iter().flatten() {
                let this = if d["device_id"] == c.device_id.as_str() { " (this device)" } else { "" };
                println!("{} {}{this}", d["device_id"].as_str().unwrap_or(""), d["device_name"].as_str().unwrap_or(""));
            }
        }
        _ => bail!("unknown command or arguments (see --help)"),
    }
    Ok(())
}

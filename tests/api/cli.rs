//! The `messenger` CLI as a user runs it: real processes of the real binary on one home, against the stack.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use messenger_tests::{TestApp, unique_phone};

/// The `messenger` binary, built from `client/src/bin/messenger.rs` for this package (see `Cargo.toml`).
const CLI: &str = env!("CARGO_BIN_EXE_messenger-cli");
const PASSWORD: &str = "correct horse battery";

fn cli(app: &TestApp, home: &Path) -> Command {
    let mut command = Command::new(CLI);
    command
        .arg("--home")
        .arg(home)
        .arg("--server")
        .arg(&app.base)
        .env("MESSENGER_PASSWORD", PASSWORD)
        .env_remove("MESSENGER_PASSPHRASE")
        .env_remove("MESSENGER_HOME")
        .stdin(Stdio::null());
    command
}

/// Runs a command to its end (off the async runtime, which serves the stack).
async fn run(mut command: Command, args: &[&str]) -> Output {
    command.args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must succeed; returns its standard output.
async fn ok(command: Command, args: &[&str]) -> String {
    let output = run(command, args).await;
    assert!(output.status.success(), "{args:?} failed: {}{}", stdout(&output), stderr(&output));
    stdout(&output)
}

/// Registers a user in `home`; returns the user id.
async fn register(app: &TestApp, home: &Path, first: &str) -> i64 {
    let phone = unique_phone();
    let out = ok(cli(app, home), &["register", "--first", first, "--last", "Cli", "--phone", &phone]).await;
    // "registered user <id> on device <device>"
    out.split_whitespace().nth(2).and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("no id in {out:?}"))
}

/// A background `listen`: its output lines arrive on a channel.
struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Listener {
    async fn start(app: &TestApp, home: &Path) -> Self {
        let mut child = cli(app, home).arg("listen").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut listener = Self { child, lines };
        listener.expect("listening as user").await;
        listener
    }

    /// Waits for a line containing `needle`; returns it.
    async fn expect(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match self.lines.try_recv() {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(mpsc::TryRecvError::Empty) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("listen printed no line with {needle:?}: {e:?}"),
            }
        }
    }

    /// Every line printed so far.
    fn drain(&mut self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn commands_on_a_home_with_listen_in_the_background_run_in_the_listener() {
    let app = TestApp::spawn().await;
    let homes = tempfile::tempdir().unwrap();
    let (alice_home, bob_home) = (homes.path().join("alice"), homes.path().join("bob"));
    let alice = register(&app, &alice_home, "Alice").await;
    let bob = register(&app, &bob_home, "Bob").await;

    // The README's flow: bob listens in the background...
    let mut listen = Listener::start(&app, &bob_home).await;
    ok(cli(&app, &alice_home), &["send", &bob.to_string(), "hello", "bob"]).await;
    assert!(listen.expect("hello bob").await.contains(&format!("user {alice}")));

    // ...and replies from the same home, several processes at once: each command runs in the listener.
    let replies: Vec<_> = (0..3)
        .map(|i| {
            let command = cli(&app, &bob_home);
            let text = format!("reply {i}");
            let to = alice.to_string();
            tokio::spawn(async move { run(command, &["send", &to, &text]).await })
        })
        .collect();
    for reply in replies {
        let output = reply.await.unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).starts_with("sent #"), "{}", stdout(&output));
    }

    // Nothing was split: alice reads every reply, and bob's listener still reads alice.
    let history = ok(cli(&app, &alice_home), &["history", &bob.to_string()]).await;
    for text in ["hello bob", "reply 0", "reply 1", "reply 2"] {
        assert_eq!(history.matches(text).count(), 1, "{text} in {history}");
    }
    ok(cli(&app, &alice_home), &["send", &bob.to_string(), "still", "readable"]).await;
    listen.expect("still readable").await;

    // Bob's history, asked while listen runs, decrypts both sides (his own copies were not lost).
    let history = ok(cli(&app, &bob_home), &["history", &alice.to_string()]).await;
    for text in ["hello bob", "reply 0", "reply 1", "reply 2", "still readable"] {
        assert_eq!(history.matches(text).count(), 1, "{text} in {history}");
    }
    assert!(!history.contains("cannot decrypt"), "{history}");
    let printed = listen.drain().join("\n");
    assert!(!printed.contains("cannot decrypt"), "{printed}");

    // A second listener on the same home is refused with a clear message.
    let second = run(cli(&app, &bob_home), &["listen"]).await;
    assert!(!second.status.success());
    assert!(stderr(&second).contains("already listening"), "{}", stderr(&second));

    // Once the listener is gone (even killed, leaving its socket file), commands run on their own again.
    drop(listen);
    let history = ok(cli(&app, &bob_home), &["history", &alice.to_string()]).await;
    assert_eq!(history.lines().count(), 5, "{history}");
    assert!(!history.contains("cannot decrypt"), "{history}");
}

#[tokio::test]
async fn commands_on_one_home_without_a_listener_take_turns() {
    let app = TestApp::spawn().await;
    let homes = tempfile::tempdir().unwrap();
    let (alice_home, bob_home) = (homes.path().join("alice"), homes.path().join("bob"));
    let alice = register(&app, &alice_home, "Alice").await;
    let bob = register(&app, &bob_home, "Bob").await;
    let sends: Vec<_> = (0..4)
        .map(|i| {
            let command = cli(&app, &alice_home);
            let to = bob.to_string();
            tokio::spawn(async move { run(command, &["send", &to, &format!("message {i}")]).await })
        })
        .collect();
    for send in sends {
        let output = send.await.unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    // Every send advanced the one Olm state in turn: bob decrypts all, alice kept her own copies.
    for (home, peer) in [(&bob_home, alice), (&alice_home, bob)] {
        let history = ok(cli(&app, home), &["history", &peer.to_string()]).await;
        for i in 0..4 {
            assert_eq!(history.matches(&format!("message {i}")).count(), 1, "{history}");
        }
        assert!(!history.contains("cannot decrypt"), "{history}");
    }
}

#[tokio::test]
async fn deleting_the_account_asks_for_the_password() {
    let app = TestApp::spawn().await;
    let homes = tempfile::tempdir().unwrap();
    let home = homes.path().join("alice");
    let alice = register(&app, &home, "Alice").await;
    let mut wrong = cli(&app, &home);
    wrong.env("MESSENGER_PASSWORD", "not the password");
    let output = run(wrong, &["delete-account"]).await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("Password is incorrect"), "{}", stderr(&output));
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM user WHERE id = {alice} AND password_hash IS NOT NULL")).await,
        1
    );
    let out = ok(cli(&app, &home), &["delete-account"]).await;
    assert!(out.contains(&format!("deleted user {alice}")), "{out}");
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM user WHERE id = {alice} AND password_hash IS NOT NULL")).await,
        0
    );
}

#[tokio::test]
async fn a_passphrase_protected_home_opens_only_with_its_passphrase() {
    let app = TestApp::spawn().await;
    let homes = tempfile::tempdir().unwrap();
    let home = homes.path().join("carol");
    let phone = unique_phone();
    let mut command = cli(&app, &home);
    command.env("MESSENGER_PASSPHRASE", "a long passphrase");
    ok(command, &["register", "--first", "Carol", "--last", "Cli", "--phone", &phone]).await;
    let refused = run(cli(&app, &home), &["devices"]).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("wrong passphrase"), "{}", stderr(&refused));
    let mut command = cli(&app, &home);
    command.env("MESSENGER_PASSPHRASE", "a long passphrase");
    assert!(ok(command, &["devices"]).await.contains("(this device)"));
}

#[tokio::test]
async fn group_commands_create_add_send_and_remove_and_listen_prints_group_messages() {
    let app = TestApp::spawn().await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (alice_home, bob_home, carol_home) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
    register(&app, alice_home, "Alice").await;
    let bob = register(&app, bob_home, "Bob").await;
    let carol = register(&app, carol_home, "Carol").await;
    let mut listener = Listener::start(&app, bob_home).await;

    let created = ok(cli(&app, alice_home), &["group", "create", "--name", "Team"]).await;
    // "created group <id>"
    let group = created.split_whitespace().nth(2).unwrap().to_owned();
    let added = ok(cli(&app, alice_home), &["group", "add", &group, &bob.to_string(), &carol.to_string()]).await;
    assert!(added.contains("epoch 1"), "{added}");
    listener.expect(&format!("! group {group}: joined Team")).await;

    ok(cli(&app, alice_home), &["group", "send", &group, "hello", "team"]).await;
    let line = listener.expect(&format!("[group {group}]")).await;
    assert!(line.ends_with(": hello team"), "{line}");
    // Carol was not listening: her next group command joins from the waiting welcome first.
    let sent = ok(cli(&app, carol_home), &["group", "send", &group, "hi from carol"]).await;
    assert!(sent.contains(&format!("joined group {group}")), "{sent}");
    assert!(listener.expect("hi from carol").await.contains(&format!("user {carol}")));
    let listed = ok(cli(&app, bob_home), &["group", "list"]).await;
    assert!(listed.contains(&format!("{group} Team — 3 devices, epoch 1")), "{listed}");

    // Bob is no admin; Alice removes Carol, and Carol cannot send to the group any more.
    let refused = run(cli(&app, bob_home), &["group", "remove", &group, &carol.to_string()]).await;
    assert!(!refused.status.success() && stderr(&refused).contains("Only group admins"), "{}", stderr(&refused));
    ok(cli(&app, alice_home), &["group", "remove", &group, &carol.to_string()]).await;
    listener.expect(&format!("! group {group}: epoch 2")).await;
    let after = run(cli(&app, carol_home), &["group", "send", &group, "am I still in?"]).await;
    assert!(!after.status.success(), "{}", stdout(&after));
    ok(cli(&app, alice_home), &["group", "send", &group, "just us"]).await;
    assert!(listener.expect("just us").await.contains(&format!("[group {group}]")));
}

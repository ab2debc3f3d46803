//! Group chats end to end with the reference client: `messenger_client::Client` devices (three users with two
//! devices each) and the `messenger group …` CLI as real processes.

use std::time::Duration;

use messenger_client::{Client, Event, LoginAs, Socket};
use messenger_tests::{TestApp, unique_phone};

const PASSWORD: &str = "correct horse battery";

/// A device with its connection.
struct Dev {
    client: Client,
    socket: Socket,
}

async fn user(app: &TestApp, name: &str) -> (Dev, Dev) {
    let phone = unique_phone();
    let first = Client::register(&app.base, None, (name, "Group", &phone), PASSWORD, "phone").await.unwrap();
    let second = Client::login(&app.base, None, LoginAs::Phone(phone), PASSWORD, "laptop").await.unwrap();
    let (s1, s2) = (first.connect().await.unwrap(), second.connect().await.unwrap());
    (Dev { client: first, socket: s1 }, Dev { client: second, socket: s2 })
}

impl Dev {
    /// Handles events until one `pick` accepts; other events are handled (merged, decrypted) and dropped.
    async fn until<T>(&mut self, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout_at(deadline, self.socket.next_event())
                .await
                .expect("timed out waiting for an event")
                .unwrap()
                .expect("connection closed");
            let event = self.client.handle(&mut self.socket, event).await.unwrap();
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }

    async fn text_from(&mut self, group: i64) -> String {
        self.until(|e| match e {
            Event::GroupMessage(m) if m.group_id == group => Some(m.text.clone().unwrap_or_default()),
            _ => None,
        })
        .await
    }
}

#[tokio::test]
async fn three_users_with_two_devices_each_all_read_every_message_and_a_removed_user_reads_nothing_after() {
    let app = TestApp::spawn().await;
    let (mut a1, mut a2) = user(&app, "Alice").await;
    let (mut b1, mut b2) = user(&app, "Bob").await;
    let (mut c1, mut c2) = user(&app, "Carol").await;
    let group = a1.client.group_create(Some("Six devices")).await.unwrap().id;
    let (alice, bob, carol) = (a1.client.user_id, b1.client.user_id, c1.client.user_id);
    // Alice's own second device is added with the others.
    assert_eq!(a1.client.group_add(group, &[alice, bob, carol]).await.unwrap(), 1);
    for d in [&mut a2, &mut b1, &mut b2, &mut c1, &mut c2] {
        d.until(|e| matches!(e, Event::GroupJoined { group_id, .. } if *group_id == group).then_some(())).await;
    }
    let mut devices = [a1, a2, b1, b2, c1, c2];
    for sender in 0..devices.len() {
        let text = format!("hello from device {sender}");
        let (left, right) = devices.split_at_mut(sender);
        let (me, rest) = right.split_first_mut().unwrap();
        me.client.group_send(&mut me.socket, group, &text).await.unwrap();
        for other in left.iter_mut().chain(rest.iter_mut()) {
            assert_eq!(other.text_from(group).await, text, "device {sender}'s message");
        }
    }

    // Bob's second device removes Carol (Bob is no admin: refused); Alice's first device can.
    let [a1, a2, b1, b2, c1, c2] = &mut devices;
    assert!(b2.client.group_remove(group, carol).await.is_err(), "only admins remove others");
    assert_eq!(a1.client.group_remove(group, carol).await.unwrap(), 2);
    for d in [&mut *c1, &mut *c2] {
        d.until(|e| matches!(e, Event::GroupRemoved { group_id } if *group_id == group).then_some(())).await;
    }
    for d in [&mut *a2, &mut *b1, &mut *b2] {
        d.until(|e| matches!(e, Event::GroupCommit { epoch: 2, .. }).then_some(())).await;
    }
    a2.client.group_send(&mut a2.socket, group, "without carol").await.unwrap();
    for d in [&mut *a1, &mut *b1, &mut *b2] {
        assert_eq!(d.text_from(group).await, "without carol");
    }
    assert!(c1.client.group_send(&mut c1.socket, group, "still here?").await.is_err());

    // Bob leaves with both devices; Alice's next add first commits the removal of his leaves, which the
    // server requires, then adds Dave.
    b1.client.group_leave(group).await.unwrap();
    let (mut d1, _d2) = user(&app, "Dave").await;
    assert_eq!(a1.client.group_add(group, &[d1.client.user_id]).await.unwrap(), 4, "removal at 3, add at 4");
    d1.until(|e| matches!(e, Event::GroupJoined { group_id, .. } if *group_id == group).then_some(())).await;
    a2.until(|e| matches!(e, Event::GroupCommit { epoch: 4, .. }).then_some(())).await;
    a2.client.group_send(&mut a2.socket, group, "welcome dave").await.unwrap();
    assert_eq!(d1.text_from(group).await, "welcome dave");
    assert_eq!(a1.text_from(group).await, "welcome dave");
}

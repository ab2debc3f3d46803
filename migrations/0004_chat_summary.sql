-- `GET /chats/active` reads one row per (user, peer): the newest message of the conversation still visible
-- to that user. Triggers keep it in the same transaction as every change to `message` (send, hide, delete
-- for everyone, row deletion), whichever code path makes it, and on a libSQL server they run there, without
-- a round trip of their own.

CREATE TABLE chat_summary (
    user_id          INTEGER NOT NULL,
    peer_id          INTEGER NOT NULL,
    last_message_id  INTEGER,              -- NULL only inside a trigger, between recompute and removal
    last_time        INTEGER,              -- created_at of that message (the list's order and cursor)
    PRIMARY KEY (user_id, peer_id)
);
CREATE INDEX chat_summary_recent ON chat_summary (user_id, last_time, peer_id);

-- A new message is the newest of its conversation for each side that can see it.
CREATE TRIGGER chat_summary_on_insert AFTER INSERT ON message WHEN NEW.deleted_for_everyone = 0
BEGIN
    INSERT INTO chat_summary (user_id, peer_id, last_message_id, last_time)
    SELECT NEW.sender_id, NEW.receiver_id, NEW.id, NEW.created_at WHERE NEW.hidden_for_sender = 0
    UNION ALL
    SELECT NEW.receiver_id, NEW.sender_id, NEW.id, NEW.created_at WHERE NEW.hidden_for_receiver = 0
    ON CONFLICT (user_id, peer_id) DO UPDATE SET last_message_id = excluded.last_message_id,
        last_time = excluded.last_time
    WHERE excluded.last_message_id > chat_summary.last_message_id OR chat_summary.last_message_id IS NULL;
END;

-- When the message a side's summary points at stops being visible to that side, the summary moves to the
-- newest message still visible to it (found through `message_pair`), or goes away. Each statement is a
-- primary-key look-up, so a message that is not a summary costs four of them.
CREATE TRIGGER chat_summary_on_update
AFTER UPDATE OF hidden_for_sender, hidden_for_receiver, deleted_for_everyone ON message
BEGIN
    UPDATE chat_summary SET (last_message_id, last_time) = (
        SELECT id, created_at FROM message
        WHERE min(sender_id, receiver_id) = min(OLD.sender_id, OLD.receiver_id)
          AND max(sender_id, receiver_id) = max(OLD.sender_id, OLD.receiver_id)
          AND deleted_for_everyone = 0
          AND NOT (sender_id = OLD.sender_id AND hidden_for_sender = 1)
          AND NOT (receiver_id = OLD.sender_id AND hidden_for_receiver = 1)
        ORDER BY id DESC LIMIT 1)
    WHERE user_id = OLD.sender_id AND peer_id = OLD.receiver_id AND last_message_id = OLD.id
      AND (NEW.hidden_for_sender = 1 OR NEW.deleted_for_everyone = 1);
    DELETE FROM chat_summary WHERE user_id = OLD.sender_id AND peer_id = OLD.receiver_id AND last_message_id IS NULL;
    UPDATE chat_summary SET (last_message_id, last_time) = (
        SELECT id, created_at FROM message
        WHERE min(sender_id, receiver_id) = min(OLD.sender_id, OLD.receiver_id)
          AND max(sender_id, receiver_id) = max(OLD.sender_id, OLD.receiver_id)
          AND deleted_for_everyone = 0
          AND NOT (sender_id = OLD.receiver_id AND hidden_for_sender = 1)
          AND NOT (receiver_id = OLD.receiver_id AND hidden_for_receiver = 1)
        ORDER BY id DESC LIMIT 1)
    WHERE user_id = OLD.receiver_id AND peer_id = OLD.sender_id AND last_message_id = OLD.id
      AND (NEW.hidden_for_receiver = 1 OR NEW.deleted_for_everyone = 1);
    DELETE FROM chat_summary WHERE user_id = OLD.receiver_id AND peer_id = OLD.sender_id AND last_message_id IS NULL;
END;

CREATE TRIGGER chat_summary_on_delete AFTER DELETE ON message
BEGIN
    UPDATE chat_summary SET (last_message_id, last_time) = (
        SELECT id, created_at FROM message
        WHERE min(sender_id, receiver_id) = min(OLD.sender_id, OLD.receiver_id)
          AND max(sender_id, receiver_id) = max(OLD.sender_id, OLD.receiver_id)
          AND deleted_for_everyone = 0
          AND NOT (sender_id = OLD.sender_id AND hidden_for_sender = 1)
          AND NOT (receiver_id = OLD.sender_id AND hidden_for_receiver = 1)
        ORDER BY id DESC LIMIT 1)
    WHERE user_id = OLD.sender_id AND peer_id = OLD.receiver_id AND last_message_id = OLD.id;
    DELETE FROM chat_summary WHERE user_id = OLD.sender_id AND peer_id = OLD.receiver_id AND last_message_id IS NULL;
    UPDATE chat_summary SET (last_message_id, last_time) = (
        SELECT id, created_at FROM message
        WHERE min(sender_id, receiver_id) = min(OLD.sender_id, OLD.receiver_id)
          AND max(sender_id, receiver_id) = max(OLD.sender_id, OLD.receiver_id)
          AND deleted_for_everyone = 0
          AND NOT (sender_id = OLD.receiver_id AND hidden_for_sender = 1)
          AND NOT (receiver_id = OLD.receiver_id AND hidden_for_receiver = 1)
        ORDER BY id DESC LIMIT 1)
    WHERE user_id = OLD.receiver_id AND peer_id = OLD.sender_id AND last_message_id = OLD.id;
    DELETE FROM chat_summary WHERE user_id = OLD.receiver_id AND peer_id = OLD.sender_id AND last_message_id IS NULL;
END;

-- Existing conversations.
INSERT INTO chat_summary (user_id, peer_id, last_message_id, last_time)
SELECT v.user_id, v.peer_id, m.id, m.created_at
FROM (
    SELECT user_id, peer_id, MAX(id) AS id FROM (
        SELECT sender_id AS user_id, receiver_id AS peer_id, id FROM message
        WHERE deleted_for_everyone = 0 AND hidden_for_sender = 0
        UNION ALL
        SELECT receiver_id, sender_id, id FROM message
        WHERE deleted_for_everyone = 0 AND hidden_for_receiver = 0)
    GROUP BY user_id, peer_id) v
JOIN message m ON m.id = v.id
WHERE true;

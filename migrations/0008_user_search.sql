-- `GET /users/search` through an index (issue 9 item 4): a substring search over every account's search text
-- was a scan of the whole user table per query, whose cost grows with the number of accounts. An FTS5 trigram
-- index over `user.search_text` (external content: the text is stored once, in `user`) answers a query of
-- three or more characters from the index; the query still checks each candidate with `instr`, so the
-- answer is exactly what the scan gave. Triggers keep the index in step with every write of `search_text`.
CREATE VIRTUAL TABLE user_search USING fts5(search_text, content = 'user', content_rowid = 'id', tokenize = 'trigram');

CREATE TRIGGER user_search_insert AFTER INSERT ON user BEGIN
    INSERT INTO user_search (rowid, search_text) VALUES (new.id, new.search_text);
END;

CREATE TRIGGER user_search_delete AFTER DELETE ON user BEGIN
    INSERT INTO user_search (user_search, rowid, search_text) VALUES ('delete', old.id, old.search_text);
END;

CREATE TRIGGER user_search_update AFTER UPDATE OF search_text ON user BEGIN
    INSERT INTO user_search (user_search, rowid, search_text) VALUES ('delete', old.id, old.search_text);
    INSERT INTO user_search (rowid, search_text) VALUES (new.id, new.search_text);
END;

-- The accounts that exist already.
INSERT INTO user_search (user_search) VALUES ('rebuild');

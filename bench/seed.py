#!/usr/bin/env python3
"""Fills a migrated messenger database with many accounts and messages, fast, for the scale rows of the
README's Performance section (issue 9 item 4): a history page, search and login must cost about the same on a
large database as on a small one.

Usage: bench/seed.py DATABASE_FILE [--users 100000] [--messages 10000000] [--peers 10]

The file must already hold the schema (run the `migrate` function on it; bench/local.sh does, with
SEED_USERS / SEED_MESSAGES set). Everything is written with plain SQL in a few statements, so the schema's
own triggers (chat summaries, the search index) run for every row as they do in production.

Accounts: ids 1..users, phones 1999xxxxxxx (the bench's own sign-ups use 1555…), usernames seed_<id>, first
and last names drawn from short lists, so a search for a common surname matches a share of all accounts and
a search for `seed_4242` exactly one. Their password hash is not a valid hash: nobody logs in as them.
Messages: every account writes to its next `peers` accounts (by id, wrapping) and they answer, in rounds,
so each conversation's messages are spread over the whole id range as real traffic is; the content is
random hex of the size of a short encrypted message.
"""

import argparse
import sqlite3
import sys
import time

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Ken", "Dennis", "Radia", "Frances",
         "Ivan", "Olga", "Sofia", "Nikolai", "Anna", "Dmitri", "Maria", "Pavel", "Elena", "Yuri"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Thompson", "Ritchie", "Perlman",
        "Allen", "Sutherland", "Ladyzhenskaya", "Kovalevskaya", "Lobachevsky", "Karenina", "Mendeleev",
        "Gaidai", "Chebyshev", "Rostova", "Gagarin", "Petrova", "Ivanova", "Smirnova", "Volkova", "Sokolova"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--peers", type=int, default=10, help="conversations each account starts")
    args = parser.parse_args()
    if args.users < 2 or args.peers < 1 or args.peers >= args.users:
        parser.error("need at least 2 users and 1 <= peers < users")

    db = sqlite3.connect(args.database, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")  # 256 MiB
    if db.execute("SELECT count(*) FROM user").fetchone()[0]:
        sys.exit(f"seed: {args.database} already holds accounts; seed a fresh database")

    started = time.monotonic()
    now = int(time.time())
    db.execute("BEGIN")
    db.execute("CREATE TEMP TABLE first_name (i INTEGER PRIMARY KEY, name TEXT)")
    db.execute("CREATE TEMP TABLE last_name (i INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO first_name VALUES (?, ?)", enumerate(FIRST))
    db.executemany("INSERT INTO last_name VALUES (?, ?)", enumerate(LAST))
    db.execute(
        """
        WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < ?1),
        named AS (
            SELECT id, 'seed_' || id AS username,
                   (SELECT name FROM first_name WHERE i = id % ?2) AS first,
                   (SELECT name FROM last_name WHERE i = (id / ?2) % ?3) AS last
            FROM n
        )
        INSERT INTO user (id, phone, username, username_lower, first_name, last_name, search_text,
                          password_hash, public_key, created_at)
        SELECT id, '1999' || printf('%07d', id), username, username, first, last,
               lower(username || char(10) || first || char(10) || last || char(10) || first || ' ' || last),
               'not-a-bcrypt-hash', NULL, ?4 - ?1 + id
        FROM named
        """,
        (args.users, len(FIRST), len(LAST), now),
    )
    db.execute("COMMIT")
    print(f"seed: {args.users} accounts in {time.monotonic() - started:.1f} s", file=sys.stderr)

    # Messages in rounds: in each round every conversation gets one message, alternately from each side.
    conversations = args.users * args.peers
    rounds = max(1, args.messages // conversations)
    batch = max(1, 1_000_000 // conversations)  # rounds per transaction, about a million rows each
    written = 0
    for first_round in range(0, rounds, batch):
        last_round = min(rounds, first_round + batch)
        t = time.monotonic()
        db.execute("BEGIN")
        db.execute(
            """
            WITH RECURSIVE r(round) AS (SELECT ?1 UNION ALL SELECT round + 1 FROM r WHERE round + 1 < ?2),
            u(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM u WHERE id < ?3),
            p(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM p WHERE k < ?4)
            INSERT INTO message (sender_id, receiver_id, encrypted_content, message_type, is_read, created_at)
            SELECT CASE WHEN round % 2 = 0 THEN u.id ELSE (u.id + p.k - 1) % ?3 + 1 END,
                   CASE WHEN round % 2 = 0 THEN (u.id + p.k - 1) % ?3 + 1 ELSE u.id END,
                   hex(randomblob(48)), 'text', 1, ?5 + round
            FROM r, u, p
            ORDER BY round, u.id, p.k
            """,
            (first_round, last_round, args.users, args.peers, now - rounds),
        )
        db.execute("COMMIT")
        written += (last_round - first_round) * conversations
        print(f"seed: {written} messages ({time.monotonic() - t:.1f} s for the last {last_round - first_round} rounds)",
              file=sys.stderr)

    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(f"seed: done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

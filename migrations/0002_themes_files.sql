-- Themes, and the indexes that let file clean-up find every reference to an object.

CREATE TABLE theme (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id               INTEGER NOT NULL REFERENCES user (id),
    name                  TEXT NOT NULL,
    primary_color         TEXT NOT NULL,   -- 32-bit ARGB as decimal text
    background_color      TEXT NOT NULL,
    bubble_color_me       TEXT NOT NULL,
    bubble_color_other    TEXT NOT NULL,
    text_color            TEXT NOT NULL,
    secondary_text_color  TEXT NOT NULL,
    brightness            TEXT NOT NULL,   -- light | dark
    wallpaper_key         TEXT,            -- S3 key owned by the user
    wallpaper_blur        TEXT NOT NULL DEFAULT '0.0',
    created_at            INTEGER NOT NULL
);
CREATE INDEX theme_user ON theme (user_id, created_at);
CREATE INDEX theme_wallpaper ON theme (wallpaper_key) WHERE wallpaper_key IS NOT NULL;

CREATE INDEX message_media ON message (media_key) WHERE media_key IS NOT NULL;
CREATE INDEX user_avatar_key ON user (avatar_key) WHERE avatar_key IS NOT NULL;
CREATE INDEX object_created ON object (created_at);

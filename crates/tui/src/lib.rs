//! The full-screen chat of udpchat, kept apart from all I/O in the Elm architecture
//! (ratatui's Model / Update / View):
//!
//! - [`Chat`] is the model: the conversation, the input line, the status figures.
//! - [`Chat::update`] takes a [`Msg`] (a key, a paste, a protocol event, a clock tick)
//!   and returns [`Effect`]s for the driver to carry out (send this, change the
//!   simulated loss, quit). It is tested on the state alone.
//! - [`render`] draws the model; it is snapshot-tested with ratatui's `TestBackend`.
//!
//! The driver in the `udpchat` binary owns the terminal (raw mode, alternate screen,
//! restore on exit and on panic), turns crossterm events and session events into
//! [`Msg`]s, and carries out the [`Effect`]s against the session.
#![forbid(unsafe_code)]

mod chat;
mod command;
mod conversation;
mod input;
mod layout;
mod view;

pub use chat::{stats_text, Chat, Effect, Gauge, Kept, Mode, Msg, Security, Status};
pub use command::{Command, HELP, KEYS};
pub use conversation::{Author, Conversation, Delivery, Entry, EntryId, SCROLLBACK};
pub use input::InputLine;
pub use view::{render, status_text};

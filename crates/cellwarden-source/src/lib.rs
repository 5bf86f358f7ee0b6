//! Turns bytes into cellwarden events.
//!
//! [`discover`] expands paths into [`InputFile`]s (folders recursively, format by name or
//! content, `.gz` transparently, `-` for standard input); [`read_input`] splits one input into
//! [`Unit`]s that decode independently (EVTX chunks, JSON record batches), so decoding runs in
//! parallel; [`Unit::decode`] turns a unit into [`cellwarden_event::Event`]s with their Sigma
//! log source from the [`Mapping`]. Every problem is a [`SourceError`] naming file and
//! position, and reading goes on after it.

pub mod case;
pub mod dbaudit;
mod error;
pub mod flow;
mod input;
pub mod json;
pub mod lineage;
pub mod linux;
mod mapping;
pub mod mysqlaudit;
pub mod mysqlconn;
pub mod mysqllog;
pub mod netflow;
pub mod pgprefix;
mod reader;
pub mod syscall;
pub mod xmlrecord;
pub mod yaml;

pub use error::{ErrorKind, Position, SourceError};
pub use input::{Context, DiscoverError, Format, InputFile, discover, sniff};
pub use mapping::{BUILTIN_MAPPING, Mapping, MappingError, Resolved};
pub use reader::{
    Collected, Decoded, Limits, StreamState, Unit, UnitOrder, UnitSink, evtx_settings, read_bytes,
    read_chunk, read_input,
};

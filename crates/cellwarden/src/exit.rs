//! How a command ends: the exit statuses, and the one place where results and errors become
//! them.

use std::process::ExitCode;

/// How a command that ran to its end ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything was read and written (exit 0).
    Ok,
    /// Some input could not be read (each error reported with file and position); the output
    /// is complete for everything else (exit 3). `rules check` uses it for invalid rules.
    InputErrors,
}

impl Status {
    /// `InputErrors` when there were any, else `Ok`.
    pub fn from_errors(errors: usize) -> Status {
        if errors == 0 {
            Status::Ok
        } else {
            Status::InputErrors
        }
    }
}

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command line or a file it names is unusable: bad option values, a configuration,
    /// rule, mapping or key file that cannot be read (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A file named on the command line could not be read or is not valid (exit 2).
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The work was done but its result could not be written (output, store; exit 1).
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    /// A file problem with its path.
    pub fn file(
        path: impl Into<std::path::PathBuf>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Failure {
        Failure::File {
            path: path.into(),
            source: source.into(),
        }
    }
}

impl From<cellwarden_source::DiscoverError> for Failure {
    fn from(e: cellwarden_source::DiscoverError) -> Failure {
        Failure::Usage(e.to_string())
    }
}

impl From<cellwarden_web::ServeError> for Failure {
    fn from(e: cellwarden_web::ServeError) -> Failure {
        use cellwarden_web::ServeError as E;
        match e {
            E::NeedsToken(_) | E::OpenStore { .. } | E::Key(_) | E::Listen { .. } => {
                Failure::Usage(e.to_string())
            }
            E::Store(_) | E::Io(_) => Failure::Failed(e.to_string()),
        }
    }
}

impl From<cellwarden_stream::watch::WatchError> for Failure {
    fn from(e: cellwarden_stream::watch::WatchError) -> Failure {
        use cellwarden_stream::watch::WatchError as E;
        match e {
            // Stopped while running: what was read is safe up to the last checkpoint.
            E::Journal(_) => Failure::Failed(e.to_string()),
            _ => Failure::Usage(e.to_string()),
        }
    }
}

impl From<cellwarden_stream::kafka::ClientError> for Failure {
    fn from(e: cellwarden_stream::kafka::ClientError) -> Failure {
        Failure::Usage(e.to_string())
    }
}

/// Exit status 0: all input read.
pub const OK: u8 = 0;
/// Exit status 1: results could not be written.
pub const FAILED: u8 = 1;
/// Exit status 2: usage error.
pub const USAGE: u8 = 2;
/// Exit status 3: some input had errors; the output is complete for the rest.
pub const INPUT_ERRORS: u8 = 3;

/// The exit status of a command's result; a failure is one line on stderr.
pub fn code(result: Result<Status, Failure>) -> ExitCode {
    ExitCode::from(match result {
        Ok(Status::Ok) => OK,
        Ok(Status::InputErrors) => INPUT_ERRORS,
        Err(f) => {
            eprintln!("cellwarden: {f}");
            match f {
                Failure::Usage(_) | Failure::File { .. } => USAGE,
                Failure::Failed(_) => FAILED,
            }
        }
    })
}

//! Opening a connection to a [`Backend`]: the one place that chooses between the drivers.
//! It sits above both `backend` (the connection trait the drivers implement) and the
//! drivers themselves, so that neither imports the other.

use crate::backend::{Backend, Connection, Kind};
use crate::{pg, sqlite, DbError};

/// Opens a connection to `backend` (on a pool worker: this blocks).
pub(crate) fn connect(backend: &Backend) -> Result<Box<dyn Connection>, DbError> {
    match backend.kind() {
        Kind::SqliteMemory => sqlite::connect(None).map(|c| Box::new(c) as _),
        Kind::SqliteFile(path) => sqlite::connect(Some(path)).map(|c| Box::new(c) as _),
        Kind::Postgres(config) => pg::connect(config).map(|c| Box::new(c) as _),
    }
}

//! One SQL interface over the two databases the store runs on: an SQLite file (embedded, the
//! default) and PostgreSQL (shared by several replicas).
//!
//! The store's queries are written once, in the SQL both understand, with SQLite's numbered
//! placeholders (`?1`, `?2`, …); [`Tx`] runs them on either database. For PostgreSQL the
//! placeholders become `$1`, `$2`, … and each statement is prepared once per connection (as
//! rusqlite's statement cache does for SQLite). The few places where the dialects differ ask
//! [`Tx::dialect`]: a row lock taken before a read-then-write (`FOR UPDATE`, PostgreSQL only:
//! SQLite's writer already holds the whole database) and the largest of several values
//! (`max(a, b)` in SQLite, `greatest(a, b)` in PostgreSQL).
//!
//! Values cross as the types both drivers map the same way: `i64` (SQLite `INTEGER`,
//! PostgreSQL `BIGINT`), `f64`, `String`/`&str` (`TEXT`) and `Option`s of them for NULL.
//! Times are unix milliseconds in `i64`.

use std::cell::RefCell;
use std::collections::HashMap;

use rusqlite::types::{FromSql, Value, ValueRef};

use super::error::StoreError;

/// A parameter both drivers can bind.
pub(crate) trait Param: Sync {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync> Param for T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync) {
        self
    }
}

/// Which database a [`Tx`] runs on, for the few queries written per dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Appended to a `SELECT` whose rows the transaction then updates.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// Appended to a `SELECT` of a row that must not change until the transaction ends (the
    /// lease a leader's write is fenced by).
    pub(crate) fn for_share(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR SHARE",
        }
    }

    /// The function giving the largest of its arguments.
    pub(crate) fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "max",
            Dialect::Postgres => "greatest",
        }
    }
}

/// A PostgreSQL connection with its prepared statements.
pub(crate) struct PgConnection {
    /// Always `Some` until dropped.
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    /// A call on it failed because the connection was lost: open a new one before the next.
    pub(crate) lost: bool,
}

impl PgConnection {
    pub(crate) fn new(client: postgres::Client) -> PgConnection {
        PgConnection {
            client: Some(client),
            statements: HashMap::new(),
            lost: false,
        }
    }

    /// Splits the connection into a transaction and the statement cache it may use.
    pub(crate) fn begin(
        &mut self,
        read_only: bool,
    ) -> Result<
        (
            postgres::Transaction<'_>,
            &mut HashMap<String, postgres::Statement>,
        ),
        postgres::Error,
    > {
        let client = self
            .client
            .as_mut()
            .expect("a connection is open until dropped");
        let mut builder = client.build_transaction();
        if read_only {
            // One consistent snapshot for everything the read looks at.
            builder = builder
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true);
        }
        Ok((builder.start()?, &mut self.statements))
    }

    /// Forgets prepared statements (after the connection was replaced).
    pub(crate) fn reset(&mut self, client: postgres::Client) {
        self.drop_client();
        self.client = Some(client);
        self.statements.clear();
        self.lost = false;
    }

    /// Whether a new connection is needed before the next call.
    pub(crate) fn needs_reconnect(&self) -> bool {
        self.lost || self.client.as_ref().is_none_or(postgres::Client::is_closed)
    }

    pub(crate) fn client(&mut self) -> &mut postgres::Client {
        self.client
            .as_mut()
            .expect("a connection is open until dropped")
    }

    /// Closes the client. Its `Drop` runs the client's own runtime to say goodbye to the
    /// server, which may not happen on a thread that drives async tasks (the daemon drops its
    /// store there): then it is closed on a thread of its own.
    fn drop_client(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::spawn(move || drop(client));
        } else {
            drop(client);
        }
    }

    /// Notes a failed call's error: one that lost the connection marks it for reopening.
    pub(crate) fn observe<T>(&mut self, result: &Result<T, StoreError>) {
        if let Err(err) = result {
            if connection_lost(err) {
                self.lost = true;
            }
        }
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.drop_client();
    }
}

/// An open transaction on either database. Its queries are run with [`Tx::execute`],
/// [`Tx::query`] and [`Tx::query_opt`].
pub(crate) enum Tx<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(RefCell<PgTx<'a>>),
}

pub(crate) struct PgTx<'a> {
    pub(crate) tx: postgres::Transaction<'a>,
    statements: &'a mut HashMap<String, postgres::Statement>,
}

impl<'a> PgTx<'a> {
    pub(crate) fn new(
        (tx, statements): (
            postgres::Transaction<'a>,
            &'a mut HashMap<String, postgres::Statement>,
        ),
    ) -> PgTx<'a> {
        PgTx { tx, statements }
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.tx.prepare(&numbered_placeholders(sql))?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

impl Tx<'_> {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs a statement; returns the number of rows it changed.
    pub(crate) fn execute(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<u64, StoreError> {
        match self {
            Tx::Sqlite(conn) => {
                let params: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p.sqlite()).collect();
                conn.prepare_cached(sql)
                    .and_then(|mut st| st.execute(params.as_slice()))
                    .map(|n| n as u64)
                    .map_err(|source| StoreError::Sqlite { context, source })
            }
            Tx::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let params: Vec<_> = params.iter().map(|p| p.postgres()).collect();
                pg.statement(sql)
                    .and_then(|st| pg.tx.execute(&st, &params))
                    .map_err(|source| pg_error(context, source))
            }
        }
    }

    /// Runs a query and returns its rows.
    pub(crate) fn query(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Vec<Row>, StoreError> {
        match self {
            Tx::Sqlite(conn) => {
                let params: Vec<&dyn rusqlite::ToSql> = params.iter().map(|p| p.sqlite()).collect();
                let sqlite = |source| StoreError::Sqlite { context, source };
                let mut st = conn.prepare_cached(sql).map_err(sqlite)?;
                let columns = st.column_count();
                let mut rows = st.query(params.as_slice()).map_err(sqlite)?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(sqlite)? {
                    let values = (0..columns)
                        .map(|i| row.get::<_, Value>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(sqlite)?;
                    out.push(Row {
                        context,
                        values: Values::Sqlite(values),
                    });
                }
                Ok(out)
            }
            Tx::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let params: Vec<_> = params.iter().map(|p| p.postgres()).collect();
                let rows = pg
                    .statement(sql)
                    .and_then(|st| pg.tx.query(&st, &params))
                    .map_err(|source| pg_error(context, source))?;
                Ok(rows
                    .into_iter()
                    .map(|row| Row {
                        context,
                        values: Values::Postgres(row),
                    })
                    .collect())
            }
        }
    }

    /// Runs a query and returns its first row, if any.
    pub(crate) fn query_opt(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(context, sql, params)?.into_iter().next())
    }

    /// Runs a query that returns exactly one row.
    pub(crate) fn query_one(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Row, StoreError> {
        self.query_opt(context, sql, params)?
            .ok_or_else(|| StoreError::Corrupt {
                what: context.to_string(),
                detail: "the query returned no row".to_string(),
            })
    }
}

/// One row of a result.
pub(crate) struct Row {
    context: &'static str,
    values: Values,
}

enum Values {
    Sqlite(Vec<Value>),
    Postgres(postgres::Row),
}

impl Row {
    /// The value of column `i`.
    pub(crate) fn get<T>(&self, i: usize) -> Result<T, StoreError>
    where
        T: FromSql + for<'b> postgres::types::FromSql<'b>,
    {
        let context = self.context;
        match &self.values {
            Values::Sqlite(values) => {
                let value =
                    values
                        .get(i)
                        .map(ValueRef::from)
                        .ok_or_else(|| StoreError::Sqlite {
                            context,
                            source: rusqlite::Error::InvalidColumnIndex(i),
                        })?;
                T::column_result(value).map_err(|e| StoreError::Sqlite {
                    context,
                    source: rusqlite::Error::FromSqlConversionFailure(
                        i,
                        value.data_type(),
                        Box::new(e),
                    ),
                })
            }
            Values::Postgres(row) => row.try_get(i).map_err(|source| pg_error(context, source)),
        }
    }
}

/// Whether `err` says the PostgreSQL connection is gone (closed, an I/O error, the server
/// shutting down or terminating the session) rather than that a statement failed.
pub(crate) fn connection_lost(err: &StoreError) -> bool {
    let (StoreError::Postgres { source, .. } | StoreError::Connect { source, .. }) = err else {
        return false;
    };
    if source.is_closed() {
        return true;
    }
    match source.code() {
        // Not an error the server answered with: the connection itself failed.
        None => true,
        // Class 08 (connection exception) and 57 (operator intervention: shutdown,
        // terminated session).
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57"),
    }
}

pub(crate) fn pg_error(context: &'static str, source: postgres::Error) -> StoreError {
    StoreError::Postgres {
        context,
        source: Box::new(source),
    }
}

/// `?N` placeholders as PostgreSQL's `$N`; a `?` inside a quoted literal stays.
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_literals() {
        assert_eq!(
            numbered_placeholders("UPDATE t SET a = ?2, b = '?x' WHERE id = ?1 AND c = ?10"),
            "UPDATE t SET a = $2, b = '?x' WHERE id = $1 AND c = $10"
        );
    }
}

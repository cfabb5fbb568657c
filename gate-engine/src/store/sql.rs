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
    pub(crate) client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl PgConnection {
    pub(crate) fn new(client: postgres::Client) -> PgConnection {
        PgConnection {
            client,
            statements: HashMap::new(),
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
        let mut builder = self.client.build_transaction();
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
        self.client = client;
        self.statements.clear();
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

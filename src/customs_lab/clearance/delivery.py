"""Delivery from the outbox to the clearance database, with retries. Core module: no ROS.

`Delivery.run` loops: take the oldest records from the outbox (a batch), write them to the
database in one transaction, then remove them from the outbox. Errors are sorted in two kinds:

- the database is unreachable or failing as a whole (connection refused or lost, timeouts, a
  missing table, ...): nothing is removed; wait with exponential back-off (doubling up to
  `max_retry_delay`) and try again, for as long as it takes;
- a record the database refuses for its content (an integrity or data error, a NaN): the batch is
  retried one record at a time to find it, and that record alone moves to the outbox's
  `rejected` table with the error, so it cannot block the records behind it.

The first successful contact also migrates the schema, so a bridge can start while the database
is still down.
"""

from dataclasses import dataclass, field
import threading
import time

import sqlalchemy.exc as sa_exc

from customs_lab.clearance.records import record_from_payload

# Errors that say "this record", not "the database": the record is rejected, not retried.
CONTENT_ERRORS = (sa_exc.IntegrityError, sa_exc.DataError, ValueError, TypeError, KeyError)


@dataclass
class DeliveryStats:
    """Counters for diagnostics and benchmarks."""

    stored: dict = field(default_factory=dict)  # kind -> records newly stored
    duplicates: int = 0  # records the database already had (redeliveries)
    rejected: int = 0
    failures: int = 0  # failed attempts (database unreachable)
    last_error: str = ''
    database_ready: bool = False


class Delivery:
    """Move records from an Outbox into a ClearanceDatabase."""

    def __init__(
        self,
        outbox,
        database,
        batch_size=500,
        initial_retry_delay=0.1,
        max_retry_delay=30.0,
        on_stored=None,
        log=None,
    ):
        if batch_size < 1 or initial_retry_delay <= 0 or max_retry_delay < initial_retry_delay:
            raise ValueError('need batch_size >= 1 and 0 < initial_retry_delay <= max_retry_delay')
        self.outbox = outbox
        self.database = database
        self.batch_size = batch_size
        self.initial_retry_delay = initial_retry_delay
        self.max_retry_delay = max_retry_delay
        self.on_stored = on_stored  # called as on_stored(record, newly_stored) after commit
        self.log = log or (lambda level, text: None)  # log(level, text); level 'info'/'error'
        self.stats = DeliveryStats()
        self.wake = threading.Event()  # set by accept(), so the writer starts at once

    def accept(self, record) -> bool:
        """Keep a record durably in the outbox and wake the writer; False if already waiting."""
        new = self.outbox.put(record.KIND, record.key, record.subject_key, record.to_payload())
        self.wake.set()
        return new

    def deliver_once(self) -> int:
        """Deliver one batch; return how many records left the outbox.

        Raises sqlalchemy errors that mean the database is unavailable (nothing is lost).
        """
        if not self.stats.database_ready:
            self.database.migrate()
            self.stats.database_ready = True
            self.log('info', f'clearance database ready at revision {self.database.revision()}')
        pending = self.outbox.peek(self.batch_size)
        if not pending:
            return 0
        good = []
        for item in pending:
            try:
                good.append((item, record_from_payload(item.kind, item.payload)))
            except CONTENT_ERRORS as error:
                self._reject(item, f'unreadable record: {error}')
        try:
            flags = self.database.write([record for _, record in good])
        except CONTENT_ERRORS:
            flags = None  # one of them is bad: find it below
        if flags is None:
            flags = []
            for item, record in good:
                try:
                    flags.append(self.database.write([record])[0])
                except CONTENT_ERRORS as error:
                    self._reject(item, f'{type(error).__name__}: {error}'.splitlines()[0])
                    flags.append(None)
        delivered = [
            (item, record, flag)
            for (item, record), flag in zip(good, flags, strict=True)
            if flag is not None
        ]
        self.outbox.remove([item.seq for item, _, _ in delivered])
        for _, record, flag in delivered:
            if flag:
                self.stats.stored[record.KIND] = self.stats.stored.get(record.KIND, 0) + 1
            else:
                self.stats.duplicates += 1
            if self.on_stored is not None:
                self.on_stored(record, flag)
        return len(pending)

    def _reject(self, item, error: str):
        self.outbox.reject(item.seq, error)
        self.stats.rejected += 1
        self.log('error', f'{item.key} rejected by the database and kept aside: {error}')

    def run(self, stop: threading.Event, idle_wait: float = 0.5):
        """Deliver until `stop` is set, waiting out database outages with back-off."""
        delay = self.initial_retry_delay
        while not stop.is_set():
            try:
                moved = self.deliver_once()
            except Exception as error:  # noqa: B902 - the writer must outlive any failure
                # the database away (SQLAlchemyError), or anything unforeseen: keep the records,
                # say why, try again later
                self.stats.failures += 1
                self.stats.last_error = f'{type(error).__name__}: {error}'.splitlines()[0][:300]
                self.log(
                    'error',
                    f'delivery failed, retrying in {delay:.1f} s: {self.stats.last_error}',
                )
                stop.wait(delay)
                delay = min(delay * 2.0, self.max_retry_delay)
                continue
            if delay != self.initial_retry_delay:
                self.log('info', f'database reachable again; {len(self.outbox)} records waiting')
            delay = self.initial_retry_delay
            self.stats.last_error = ''
            if moved == 0:
                self.wake.wait(idle_wait)
                self.wake.clear()

    def drain(self, timeout: float) -> int:
        """Deliver what is waiting for up to `timeout` s (at shutdown); return what is left."""
        deadline = time.monotonic() + timeout
        while len(self.outbox) and time.monotonic() < deadline:
            try:
                self.deliver_once()
            except sa_exc.SQLAlchemyError as error:
                self.stats.last_error = f'{type(error).__name__}: {error}'.splitlines()[0][:300]
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return len(self.outbox)

/*
 * The wakeup handshake of one receive queue, step for step as the code takes
 * it: src/core/dispatcher.cpp (D), src/core/interface.cpp (I) and
 * src/core/engine.cpp (E). Checked by tests/model/check.sh with spin.
 *
 * Processes: NPROD transmitters on the peer (I: Interface::transmit and
 * transmit_burst -> enqueue, D: Dispatcher::wake), the queue's worker
 * (D: run_worker, pop, run_queue), one destroyer (E: finish_teardown ->
 * D: Dispatcher::close), and a monitor that checks the final state once
 * nothing can move any more.
 *
 * Checked:
 *  - no lost wakeup: when everything has stopped, no frame waits in the ring
 *    of a queue that is IDLE (or of any queue, for that matter);
 *  - no frame delivered after destroy: close() returned, no delivery;
 *  - no double delivery: every frame is delivered, dropped or freed exactly
 *    once, and without a destroy none is freed;
 *  - one consumer: the ring (an MPSC ring) never has two consumers;
 *  - the queue is on its worker's run list at most once.
 *
 * Atomics: the code's handshake is seq_cst (the RMW in wake() against the
 * exchanges that store IDLE and DEAD), so spin's interleaving semantics is the
 * code's. The relaxed stores (RUNNING, WAKING after a spent budget) are made
 * by the queue's single owner. Sections under Worker::mutex are atomic blocks.
 *
 * Compile-time switches (spin -D...): NO_DESTROY (no destroyer), NO_INLINE
 * (transmitters never deliver inline), and the MUTANT_* switches, each a bug
 * the model must catch (tests/model/check.sh expects spin to fail on them).
 */

#define IDLE    0
#define WAKING  1
#define RUNNING 2
#define DEAD    3
#define REAPING 4

#ifndef NPROD
#define NPROD 2
#endif
#ifndef PER_PROD
#define PER_PROD 2
#endif
#define NFRAMES (NPROD * PER_PROD)
#define RING_SIZE 2
/* DispatcherConfig::bursts_per_run, with bursts of one frame. */
#define BURSTS_PER_RUN 1

byte state = IDLE;          /* ReceiveQueue::state_ */
bool closed = false;        /* ReceiveQueue::closed_ */
chan ring = [RING_SIZE] of { byte };  /* ReceiveQueue::ring_ */

/* Worker (D: struct Worker); one queue, so the run list is a count, and
 * has_work (which lets a polling queue give way to another) plays no part. */
byte listed = 0;            /* head/tail: the queue is on the list */
bool sleeping = false;      /* Worker::sleeping */
byte wake_seq = 0;          /* Worker::wake_seq */

/* Bookkeeping of the checks; not in the code. */
#define DELIVERED 1
#define DROPPED   2         /* transmit refused: ring full (oqdrops) */
#define FREED     3         /* freed unread by drain() */
byte fate[NFRAMES];         /* what became of each frame, once */
byte consumers = 0;
bool close_returned = false;
byte producers_done = 0;

/* Locals are reset once used, so that stale values do not multiply states. */
inline account(what, f) {
  d_step {
    assert(fate[f] == 0);
    fate[f] = what
  }
}

/* D: Dispatcher::schedule(); the mutex section is atomic. */
inline schedule() {
  atomic {
    assert(listed == 0);
    listed = 1;
    wake_worker = sleeping;   /* sleeping.exchange(false) */
    sleeping = false
  };
  if
  :: wake_worker -> wake_seq++; wake_worker = false  /* fetch_add; notify_one */
  :: else -> skip
  fi
}

/* D: ReceiveQueue::drain(), by the owner of the consumer side. */
inline drain() {
  d_step { consumers++; assert(consumers == 1) };
  do
  :: ring?f -> account(FREED, f); f = 0
  :: empty(ring) -> break
  od;
  consumers--
}

/* D: Dispatcher::bury(); the caller owns the consumer side. */
inline bury() {
  do
  :: drain();
     state = DEAD;                 /* exchange(DEAD, seq_cst) */
     if
     :: len(ring) == 0 -> break    /* ring_.empty() */
     :: else ->
        atomic {                   /* CAS DEAD -> REAPING */
          if
          :: state == DEAD -> state = REAPING
          :: else -> break
          fi
        }
     fi
  od
}

/* D: Dispatcher::run_queue(); worker == false when a transmitter runs it
 * inline (no polling then). */
inline run_queue(worker) {
  state = RUNNING;                 /* store(RUNNING, relaxed): we own it */
  round = 0;
  budget_spent = false;
  do
  :: closed -> break               /* closed_.load(acquire) */
  :: else ->
     if
     :: round == BURSTS_PER_RUN -> budget_spent = true; break
     :: else ->
        if
        :: ring?f ->               /* dequeue_burst; input_burst */
           d_step { consumers++; assert(consumers == 1) };
           assert(!close_returned);
           account(DELIVERED, f);
           f = 0;
           consumers--;
           round++
        :: empty(ring) ->
           if
           :: worker -> skip       /* poll until the deadline... */
           :: true -> break        /* ...or give up (inline: at once) */
           fi
        fi
     fi
  od;
  if
  :: closed -> round = 0; budget_spent = false; bury()
  :: else ->
     round = 0;
     if
     :: budget_spent && len(ring) > 0 ->
        budget_spent = false;
        state = WAKING;            /* back of the line */
        schedule()
     :: else ->
        budget_spent = false;
        state = IDLE;              /* exchange(IDLE, seq_cst) */
#ifndef MUTANT_NO_RECHECK
        if
        :: len(ring) > 0 ->        /* the re-check */
           atomic {                /* CAS IDLE -> WAKING */
             if
             :: state == IDLE -> state = WAKING; won = true
             :: else -> won = false
             fi
           };
           if
           :: won -> won = false; schedule()
           :: else -> skip
           fi
        :: else -> skip
        fi
#endif
     fi
  fi
}

/* I: enqueue_on_peer(), then D: Dispatcher::wake(). */
proctype Producer(byte first) {
  byte f, seen, round;
  bool won, wake_worker, budget_spent;
  byte next = first;
  do
  :: next < first + PER_PROD ->
     if
     :: atomic { nfull(ring) -> ring!next }
     :: true ->
        /* Refused: full, or the Vyukov ring's slot still held by a preempted
         * producer of the lap before. Dropped, no wake. */
        account(DROPPED, next);
        next++;
        goto again
     fi;
     next++;
     seen = state;                 /* fetch_add(0, seq_cst) */
     if
     :: seen == DEAD ->            /* reap() */
        seen = 0;
        atomic {
          if
          :: state == DEAD -> state = REAPING; won = true
          :: else -> won = false
          fi
        };
        if
        :: won -> won = false; bury()
        :: else -> skip
        fi
     :: seen == IDLE ->
        seen = 0;
        atomic {                   /* CAS IDLE -> WAKING */
          if
          :: state == IDLE -> state = WAKING; won = true
          :: else -> won = false
          fi
        };
        if
        :: won ->
           won = false;
#ifdef NO_INLINE
           schedule()
#else
           if
           :: schedule()
           :: run_queue(false)     /* deliver_inline */
           fi
#endif
        :: else -> skip
        fi
     :: else -> seen = 0           /* WAKING, RUNNING, REAPING */
     fi;
again:
     skip
  :: else -> break
  od;
  producers_done++
}

/* D: run_worker(). */
proctype Worker() {
  byte f, seq, round;
  bool won, wake_worker, budget_spent, go_to_sleep;
  do
  :: atomic { listed > 0 -> listed = 0 };  /* pop() */
     run_queue(true)
  :: listed == 0 ->                /* pop() found nothing; spun; sleep */
#ifndef MUTANT_LATE_SEQ
     seq = wake_seq;                /* load(acquire) before the mutex */
#endif
     atomic {
       if
       :: listed > 0 -> go_to_sleep = false
       :: else -> sleeping = true; go_to_sleep = true
       fi
     };
#ifdef MUTANT_LATE_SEQ
     seq = wake_seq;                /* too late: a wake may already be in */
#endif
     if
     :: go_to_sleep ->
end_sleep:
        (wake_seq != seq);         /* wake_seq.wait(seq) */
        sleeping = false;
        seq = 0; go_to_sleep = false
     :: else -> seq = 0
     fi
  od
}

/* D: Dispatcher::close(), from E: finish_teardown, on a non-worker thread. */
proctype Destroyer() {
  byte f;
  closed = true;                   /* store(true, seq_cst) */
  do
  :: state == DEAD || state == REAPING -> break
#ifdef MUTANT_DEAD_WITHOUT_REAPING
  /* DEAD at once: a transmitter that reads it reaps beside us. */
  :: atomic { state == IDLE -> state = DEAD } -> bury(); break
#else
  :: atomic { state == IDLE -> state = REAPING } -> bury(); break
#endif
#ifdef MUTANT_CLOSE_NO_WAIT
  :: state == WAKING || state == RUNNING -> break
#else
  :: state == WAKING || state == RUNNING ->
     /* backoff until the worker that runs q sees closed_ */
     (state != WAKING && state != RUNNING)
#endif
  od;
  close_returned = true
}

active proctype Monitor() {
  byte i;
  timeout ->
  d_step {
    assert(len(ring) == 0);
    assert(listed == 0);
    i = 0;
    do
    :: i < NFRAMES ->
       assert(fate[i] != 0);
#ifdef NO_DESTROY
       assert(fate[i] != FREED);
#endif
       i++
    :: else -> break
    od;
    assert(producers_done == NPROD);
#ifdef NO_DESTROY
    assert(state == IDLE);
#else
    assert(close_returned);
    assert(state == DEAD);
#endif
  }
}

init {
  byte p = 0;
  atomic {
    run Worker();
    do
    :: p < NPROD -> run Producer(p * PER_PROD); p++
    :: else -> break
    od;
#ifndef NO_DESTROY
    run Destroyer()
#endif
  }
}

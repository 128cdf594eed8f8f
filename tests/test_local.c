/*
 * Task-local values: a task's values across suspensions and workers,
 * destructors at every kind of end, inheritance only for keys that ask for
 * it, and the errors of bad keys and calls from outside a task.
 */
#include <errno.h>

#include "helpers.h"
#include "runtime/local.h"

/* A value that records what its destructor saw. */
struct val {
    atomic_int destroyed;          /* destructor calls */
    weft_task_t *_Atomic seen_in;  /* weft_self() inside the destructor */
    atomic_int get_ret;            /* weft_local_get of its key in there */
    void *_Atomic got;             /* and the value it gave */
};

static weft_local_key_t key; /* the key the destructors look at */

static void t_val_init(struct val *v)
{
    atomic_init(&v->destroyed, 0);
    atomic_init(&v->seen_in, NULL);
    atomic_init(&v->get_ret, 1);
    atomic_init(&v->got, (void *)v);
}

static void destroy_val(void *p)
{
    struct val *v = p;
    void *got = (void *)1;

    atomic_store(&v->seen_in, weft_self());
    atomic_store(&v->get_ret, weft_local_get(key, &got));
    atomic_store(&v->got, got);
    atomic_fetch_add(&v->destroyed, 1);
}

/* ---- values across suspensions and workers -------------------------------- */

enum { MOVERS = 64, ROUNDS = 200 };

struct mover {
    struct val own;
};

/* Sets its own value, then suspends in several ways, checking after each
 * resumption that the value is still its own, wherever it resumed. */
static int keep_value(void *arg)
{
    struct mover *m = arg;
    void *v;

    cr_assert_eq(weft_local_set(key, &m->own), 0);
    for (int i = 0; i < ROUNDS; i++) {
        if (i % 16 == 0)
            cr_assert_eq(weft_sleep_ms(0), 0);
        else
            cr_assert_eq(weft_yield(), 0);
        cr_assert_eq(weft_local_get(key, &v), 0);
        cr_assert_eq(v, &m->own, "round %d: another task's value", i);
    }
    return 0;
}

static int many_keep_values(void *arg)
{
    static struct mover m[MOVERS];
    weft_task_t *t[MOVERS];

    (void)arg;
    for (int i = 0; i < MOVERS; i++) {
        t_val_init(&m[i].own);
        cr_assert_eq(weft_spawn(&t[i], keep_value, &m[i]), 0);
    }
    for (int i = 0; i < MOVERS; i++) {
        cr_assert_eq(weft_join(t[i]), 0);
        cr_assert_eq(atomic_load(&m[i].own.destroyed), 1, "task %d", i);
        cr_assert_eq(atomic_load(&m[i].own.seen_in), t[i]);
    }
    return 0;
}

Test(local, values_survive_suspensions_on_every_worker, .timeout = 60)
{
    cr_assert_eq(weft_local_key_create(&key, destroy_val, NULL), 0);
    t_run(many_keep_values, NULL);
}

/*
 * A task that certainly resumes on another worker: it queues itself behind
 * a hog that holds its worker until the task has run elsewhere (another
 * worker steals it, or takes over the stalled worker's queue).
 */
struct steal {
    atomic_bool moved;
    struct val own;
};

static int hog(void *arg)
{
    struct steal *s = arg;

    while (!atomic_load(&s->moved))
        ;
    return 0;
}

static int stolen(void *arg)
{
    struct steal *s = arg;
    int first = weft_worker_id();
    weft_task_t *h;
    void *v;

    cr_assert_eq(weft_local_set(key, &s->own), 0);
    /* The hog goes to this worker's LIFO slot and runs next; this task
     * waits in the worker's queue behind it. */
    cr_assert_eq(weft_spawn(&h, hog, s), 0);
    cr_assert_eq(weft_yield(), 0);
    cr_assert_neq(weft_worker_id(), first);
    cr_assert_eq(weft_local_get(key, &v), 0);
    cr_assert_eq(v, &s->own);
    atomic_store(&s->moved, true);
    cr_assert_eq(weft_join(h), 0);
    cr_assert_eq(weft_local_get(key, &v), 0);
    cr_assert_eq(v, &s->own);
    return 0;
}

static int steal_keeps_value(void *arg)
{
    struct steal s;
    weft_task_t *t;

    (void)arg;
    atomic_init(&s.moved, false);
    t_val_init(&s.own);
    cr_assert_eq(weft_spawn(&t, stolen, &s), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(atomic_load(&s.own.destroyed), 1);
    return 0;
}

Test(local, value_survives_a_steal_to_another_worker, .timeout = 60)
{
    cr_assert_eq(weft_local_key_create(&key, destroy_val, NULL), 0);
    t_run_two_or_more(steal_keeps_value, NULL);
}

/* ---- destructors ---------------------------------------------------------- */

struct ending {
    struct val v;
    int ret;  /* what the task returns, or 1: sleep until cancelled */
    weft_task_t *_Atomic self;
};

static int end_as_told(void *arg)
{
    struct ending *e = arg;
    void *v;

    atomic_store(&e->self, weft_self());
    cr_assert_eq(weft_local_set(key, &e->v), 0);
    cr_assert_eq(weft_local_get(key, &v), 0);
    cr_assert_eq(v, &e->v);
    if (e->ret == 1)
        return weft_sleep_ms(3600 * 1000);
    return e->ret;
}

static int ends_of_every_kind(void *arg)
{
    struct ending e[3] = { { .ret = 0 }, { .ret = -EIO }, { .ret = 1 } };
    weft_task_t *t[3];

    (void)arg;
    for (int i = 0; i < 3; i++) {
        t_val_init(&e[i].v);
        atomic_init(&e[i].self, NULL);
        cr_assert_eq(weft_spawn(&t[i], end_as_told, &e[i]), 0);
    }
    while (!atomic_load(&e[2].self))
        cr_assert_eq(weft_yield(), 0);
    t_until_parked_in(t[2], WHY_SLEEP);
    cr_assert_eq(atomic_load(&e[2].v.destroyed), 0);
    cr_assert_eq(weft_cancel(t[2]), 0);
    cr_assert_eq(weft_join(t[0]), 0);
    cr_assert_eq(weft_join(t[1]), -EIO);
    cr_assert_eq(weft_join(t[2]), -ECANCELED);
    for (int i = 0; i < 3; i++) {
        /* Once, in the task itself, its value cleared by then: and all of
         * it before the join returned. */
        cr_assert_eq(atomic_load(&e[i].v.destroyed), 1, "task %d", i);
        cr_assert_eq(atomic_load(&e[i].v.seen_in), atomic_load(&e[i].self));
        cr_assert_eq(atomic_load(&e[i].v.get_ret), 0);
        cr_assert_null(atomic_load(&e[i].v.got));
    }
    return 0;
}

Test(local, destructor_runs_in_the_task_on_success_failure_and_cancel,
     .timeout = 30)
{
    cr_assert_eq(weft_local_key_create(&key, destroy_val, NULL), 0);
    t_run(ends_of_every_kind, NULL);
}

/* A destructor may suspend: it runs in the task, not on the worker. */
static atomic_int slept_in_dtor = 1;

static void destroy_after_sleep(void *p)
{
    atomic_store(&slept_in_dtor, weft_sleep_ms(1));
    destroy_val(p);
}

static int set_and_return(void *arg)
{
    return weft_local_set(key, arg);
}

static int dtor_suspends(void *arg)
{
    struct val v;
    weft_task_t *t;

    (void)arg;
    t_val_init(&v);
    cr_assert_eq(weft_spawn(&t, set_and_return, &v), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(atomic_load(&slept_in_dtor), 0);
    cr_assert_eq(atomic_load(&v.destroyed), 1);
    return 0;
}

Test(local, destructor_may_suspend_before_the_join_returns, .timeout = 30)
{
    cr_assert_eq(weft_local_key_create(&key, destroy_after_sleep, NULL), 0);
    t_run(dtor_suspends, NULL);
}

/* A destructor that sets a value again gets another round, up to
 * WEFT_LOCAL_DESTRUCTOR_ROUNDS. */
static atomic_int rounds;
static atomic_int resets; /* how many times a destructor sets again */

static void destroy_and_reset(void *p)
{
    atomic_fetch_add(&rounds, 1);
    if (atomic_fetch_sub(&resets, 1) > 0)
        cr_assert_eq(weft_local_set(key, p), 0);
}

static int rounds_of(void *arg)
{
    weft_task_t *t;

    atomic_store(&rounds, 0);
    atomic_store(&resets, (int)(intptr_t)arg);
    cr_assert_eq(weft_spawn(&t, set_and_return, &rounds), 0);
    cr_assert_eq(weft_join(t), 0);
    return atomic_load(&rounds);
}

static int destructor_rounds(void *arg)
{
    (void)arg;
    cr_assert_eq(rounds_of((void *)0), 1);
    cr_assert_eq(rounds_of((void *)1), 2);
    cr_assert_eq(rounds_of((void *)1000), WEFT_LOCAL_DESTRUCTOR_ROUNDS);
    return 0;
}

Test(local, destructor_setting_again_gets_bounded_rounds, .timeout = 30)
{
    cr_assert_eq(weft_local_key_create(&key, destroy_and_reset, NULL), 0);
    t_run(destructor_rounds, NULL);
}

/* No destructor for NULL, for a value replaced (the caller owns it), for a
 * value of a key deleted meanwhile, or for a key without one. */
static weft_local_key_t plain_key;

static int set_replace_delete(void *arg)
{
    struct val *v = arg;

    cr_assert_eq(weft_local_set(key, &v[0]), 0);
    cr_assert_eq(weft_local_set(key, &v[1]), 0);
    cr_assert_eq(weft_local_set(plain_key, &v[2]), 0);
    cr_assert_eq(weft_local_set(key, NULL), 0);
    cr_assert_eq(weft_local_set(key, &v[3]), 0);
    cr_assert_eq(weft_local_key_delete(key), 0);
    return 0;
}

static int no_destructor_cases(void *arg)
{
    struct val v[4];
    weft_task_t *t;

    (void)arg;
    for (int i = 0; i < 4; i++)
        t_val_init(&v[i]);
    cr_assert_eq(weft_spawn(&t, set_replace_delete, v), 0);
    cr_assert_eq(weft_join(t), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(atomic_load(&v[i].destroyed), 0, "value %d", i);
    return 0;
}

Test(local, no_destructor_for_replaced_cleared_or_deleted_values,
     .timeout = 30)
{
    cr_assert_eq(weft_local_key_create(&key, destroy_val, NULL), 0);
    cr_assert_eq(weft_local_key_create(&plain_key, NULL, NULL), 0);
    t_run(no_destructor_cases, NULL);
}

/* Every key at once in one task: its table grows to the last slot. */
static weft_local_key_t all_keys[WEFT_LOCAL_KEYS_MAX];
static atomic_int all_destroyed;

static void count_destroyed(void *p)
{
    (void)p;
    atomic_fetch_add(&all_destroyed, 1);
}

static int use_every_key(void *arg)
{
    static char vals[WEFT_LOCAL_KEYS_MAX];
    void *v;

    (void)arg;
    /* Backwards: the first set takes the largest table. */
    for (int i = WEFT_LOCAL_KEYS_MAX; i-- > 0;)
        cr_assert_eq(weft_local_set(all_keys[i], &vals[i]), 0);
    for (int i = 0; i < WEFT_LOCAL_KEYS_MAX; i++) {
        cr_assert_eq(weft_local_get(all_keys[i], &v), 0);
        cr_assert_eq(v, &vals[i]);
    }
    return 0;
}

static int every_key(void *arg)
{
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, use_every_key, NULL), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(atomic_load(&all_destroyed), WEFT_LOCAL_KEYS_MAX);
    return 0;
}

Test(local, every_key_in_one_task, .timeout = 30)
{
    for (int i = 0; i < WEFT_LOCAL_KEYS_MAX; i++)
        cr_assert_eq(weft_local_key_create(&all_keys[i], count_destroyed,
                                           NULL), 0);
    t_run(every_key, NULL);
}

/* ---- inheritance ------------------------------------------------------------ */

/* A reference-counted value: inherit takes a reference, the destructor
 * drops one. */
struct shared {
    atomic_int refs;
    atomic_int copies;
};

static void *take_ref(void *p)
{
    struct shared *s = p;

    atomic_fetch_add(&s->refs, 1);
    atomic_fetch_add(&s->copies, 1);
    return s;
}

static void drop_ref(void *p)
{
    struct shared *s = p;

    atomic_fetch_sub(&s->refs, 1);
}

static weft_local_key_t inherited_key, private_key;

struct seen {
    void *inherited, *private;
};

static int look(void *arg)
{
    struct seen *s = arg;

    cr_assert_eq(weft_local_get(inherited_key, &s->inherited), 0);
    cr_assert_eq(weft_local_get(private_key, &s->private), 0);
    return 0;
}

/* The parent of a tree: sets both keys, spawns a child that spawns a
 * grandchild, and looks at what they saw. */
static int grandchild_parent(void *arg)
{
    struct seen *s = arg;
    weft_task_t *t;

    cr_assert_eq(look(&s[0]), 0);
    cr_assert_eq(weft_spawn(&t, look, &s[1]), 0);
    return weft_join(t);
}

static int inheritance(void *arg)
{
    struct shared sh;
    struct seen s[2] = { { 0 } };
    struct val priv;
    weft_task_t *t;

    (void)arg;
    atomic_init(&sh.refs, 1);
    atomic_init(&sh.copies, 0);
    t_val_init(&priv);
    cr_assert_eq(weft_local_set(inherited_key, &sh), 0);
    cr_assert_eq(weft_local_set(private_key, &priv), 0);
    cr_assert_eq(weft_spawn(&t, grandchild_parent, s), 0);
    cr_assert_eq(weft_join(t), 0);
    /* Child and grandchild got the inherited key's value through inherit,
     * not the private key's; their destructors dropped their references. */
    cr_assert_eq(s[0].inherited, &sh);
    cr_assert_eq(s[1].inherited, &sh);
    cr_assert_null(s[0].private);
    cr_assert_null(s[1].private);
    cr_assert_eq(atomic_load(&sh.copies), 2);
    cr_assert_eq(atomic_load(&sh.refs), 1);
    cr_assert_eq(atomic_load(&priv.destroyed), 0);
    /* Cleared here: the main task's end must not drop the reference
     * of a value on this frame. */
    cr_assert_eq(weft_local_set(inherited_key, NULL), 0);
    cr_assert_eq(weft_local_set(private_key, NULL), 0);
    return 0;
}

Test(local, only_keys_with_inherit_pass_on_and_children_destroy_copies,
     .timeout = 30)
{
    /* The private key first: its slot comes before the inherited one's. */
    cr_assert_eq(weft_local_key_create(&private_key, destroy_val, NULL), 0);
    cr_assert_eq(weft_local_key_create(&inherited_key, drop_ref, take_ref),
                 0);
    t_run(inheritance, NULL);
}

/* A child cancelled before it started never runs, but it holds the
 * values it inherited: their destructors run at its end, outside any
 * task. */
static atomic_int child_ran;

static int mark_ran(void *arg)
{
    (void)arg;
    atomic_store(&child_ran, 1);
    return 0;
}

static void *copy_val(void *p)
{
    struct val *v = p;

    return v + 1;
}

static int cancel_before_start(void *arg)
{
    struct val v[2];
    weft_task_t *t;

    (void)arg;
    t_val_init(&v[0]);
    t_val_init(&v[1]);
    cr_assert_eq(weft_local_set(key, &v[0]), 0);
    /* One worker: the child waits in this worker's queue until we
     * suspend. */
    cr_assert_eq(weft_spawn(&t, mark_ran, NULL), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(atomic_load(&child_ran), 0);
    cr_assert_eq(atomic_load(&v[1].destroyed), 1);
    cr_assert_null(atomic_load(&v[1].seen_in));
    cr_assert_eq(atomic_load(&v[1].get_ret), -EPERM);
    cr_assert_eq(atomic_load(&v[0].destroyed), 0);
    cr_assert_eq(weft_local_set(key, NULL), 0);
    return 0;
}

Test(local, child_cancelled_before_start_destroys_inherited_values,
     .timeout = 30)
{
    cr_assert_eq(weft_local_key_create(&key, destroy_val, copy_val), 0);
    t_run_one_worker(cancel_before_start, NULL);
}

/* inherit returning NULL: the child starts without a value. */
static void *no_copy(void *p)
{
    (void)p;
    return NULL;
}

static int child_without_copy(void *arg)
{
    struct seen s = { (void *)1, (void *)1 };
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_local_set(inherited_key, &s), 0);
    cr_assert_eq(weft_spawn(&t, look, &s), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_null(s.inherited);
    return 0;
}

Test(local, inherit_returning_null_gives_no_value, .timeout = 30)
{
    cr_assert_eq(weft_local_key_create(&inherited_key, NULL, no_copy), 0);
    cr_assert_eq(weft_local_key_create(&private_key, NULL, NULL), 0);
    t_run(child_without_copy, NULL);
}

/* Group children are spawned like any task: they inherit too. */
static int group_inherits(void *arg)
{
    struct shared sh;
    struct seen s[8];
    weft_group_t g;

    (void)arg;
    atomic_init(&sh.refs, 1);
    atomic_init(&sh.copies, 0);
    cr_assert_eq(weft_local_set(inherited_key, &sh), 0);
    cr_assert_eq(weft_group_init(&g), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_group_spawn(&g, look, &s[i], NULL), 0);
    cr_assert_eq(weft_group_wait(&g), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(s[i].inherited, &sh);
    cr_assert_eq(atomic_load(&sh.copies), 8);
    cr_assert_eq(atomic_load(&sh.refs), 1);
    cr_assert_eq(weft_local_set(inherited_key, NULL), 0);
    return 0;
}

Test(local, group_children_inherit, .timeout = 30)
{
    cr_assert_eq(weft_local_key_create(&inherited_key, drop_ref, take_ref),
                 0);
    cr_assert_eq(weft_local_key_create(&private_key, NULL, NULL), 0);
    t_run(group_inherits, NULL);
}

/* ---- bad arguments ---------------------------------------------------------- */

static int bad_keys(void *arg)
{
    weft_local_key_t k, k2;
    int x;
    void *v;

    (void)arg;
    cr_assert_eq(weft_local_key_create(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_local_key_create(&k, NULL, NULL), 0);
    cr_assert_eq(weft_local_get(k, NULL), -EINVAL);
    /* A zeroed key, and one never made. */
    cr_assert_eq(weft_local_get(0, &v), -EINVAL);
    cr_assert_eq(weft_local_set(0, &x), -EINVAL);
    cr_assert_eq(weft_local_key_delete(0), -EINVAL);
    cr_assert_eq(weft_local_get(k + WEFT_LOCAL_KEYS_MAX, &v), -EINVAL);
    cr_assert_eq(weft_local_set(k + 1, &x), -EINVAL);
    /* Deleted: refused, even once a new key took its slot, and the new
     * key does not see the value set under the old one. */
    cr_assert_eq(weft_local_set(k, &x), 0);
    cr_assert_eq(weft_local_key_delete(k), 0);
    cr_assert_eq(weft_local_key_delete(k), -EINVAL);
    cr_assert_eq(weft_local_get(k, &v), -EINVAL);
    cr_assert_eq(weft_local_set(k, &x), -EINVAL);
    cr_assert_eq(weft_local_key_create(&k2, NULL, NULL), 0);
    cr_assert_eq(k2 % WEFT_LOCAL_KEYS_MAX, k % WEFT_LOCAL_KEYS_MAX,
                 "the lowest free slot is reused");
    cr_assert_neq(k2, k);
    cr_assert_eq(weft_local_get(k, &v), -EINVAL);
    cr_assert_eq(weft_local_get(k2, &v), 0);
    cr_assert_null(v);
    cr_assert_eq(weft_local_key_delete(k2), 0);
    return 0;
}

Test(local, bad_and_deleted_keys_are_einval, .timeout = 30)
{
    t_run(bad_keys, NULL);
}

Test(local, get_and_set_outside_a_task_are_eperm, .timeout = 30)
{
    weft_local_key_t k;
    void *v = &v;

    /* Keys are made and deleted from any thread, runtime or not. */
    cr_assert_eq(weft_local_key_create(&k, NULL, NULL), 0);
    cr_assert_eq(weft_local_get(k, &v), -EPERM);
    cr_assert_eq(v, &v);
    cr_assert_eq(weft_local_set(k, v), -EPERM);
    cr_assert_eq(weft_local_key_delete(k), 0);
}

Test(local, keys_run_out_with_eagain_and_come_back, .timeout = 30)
{
    static weft_local_key_t k[WEFT_LOCAL_KEYS_MAX];
    weft_local_key_t extra;

    for (int i = 0; i < WEFT_LOCAL_KEYS_MAX; i++)
        cr_assert_eq(weft_local_key_create(&k[i], NULL, NULL), 0);
    cr_assert_eq(weft_local_key_create(&extra, NULL, NULL), -EAGAIN);
    cr_assert_eq(weft_local_key_delete(k[7]), 0);
    cr_assert_eq(weft_local_key_create(&extra, NULL, NULL), 0);
    for (int i = 0; i < WEFT_LOCAL_KEYS_MAX; i++)
        cr_assert_eq(weft_local_key_delete(i == 7 ? extra : k[i]), 0);
}

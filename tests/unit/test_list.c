/* list: the intrusive LRU list the worker's caches share. */
#include <criterion/criterion.h>

#include "sf/list.h"

typedef struct item {
    sf_list_node link; /* first member */
    int v;
} item;

/* The values from head to tail, and the same read back from tail to head. */
static void expect(const sf_list *l, const int *want, int n)
{
    int i = 0;
    for (const sf_list_node *p = l->head; p; p = p->next, i++) {
        cr_assert_lt(i, n, "more nodes than expected");
        cr_assert_eq(((const item *)p)->v, want[i], "position %d", i);
    }
    cr_assert_eq(i, n);
    for (const sf_list_node *p = l->tail; p; p = p->prev)
        cr_assert_eq(((const item *)p)->v, want[--i], "backwards, position %d", i);
    cr_assert_eq(i, 0);
}

Test(list, push_head_puts_the_newest_first)
{
    sf_list l = {0};
    item a = {.v = 1}, b = {.v = 2}, c = {.v = 3};
    sf_list_push_head(&l, &a.link);
    sf_list_push_head(&l, &b.link);
    sf_list_push_head(&l, &c.link);
    expect(&l, (const int[]){3, 2, 1}, 3);
}

Test(list, unlink_from_the_head_the_middle_and_the_tail)
{
    sf_list l = {0};
    item it[4] = {{.v = 0}, {.v = 1}, {.v = 2}, {.v = 3}};
    for (int i = 0; i < 4; i++)
        sf_list_push_head(&l, &it[i].link);
    sf_list_unlink(&l, &it[2].link); /* middle */
    expect(&l, (const int[]){3, 1, 0}, 3);
    sf_list_unlink(&l, &it[3].link); /* head */
    expect(&l, (const int[]){1, 0}, 2);
    sf_list_unlink(&l, &it[0].link); /* tail */
    expect(&l, (const int[]){1}, 1);
    cr_assert_null(it[0].link.prev);
    cr_assert_null(it[0].link.next);
    sf_list_unlink(&l, &it[1].link);
    cr_assert_null(l.head);
    cr_assert_null(l.tail);
}

Test(list, move_to_head_marks_the_most_recently_used)
{
    sf_list l = {0};
    item it[3] = {{.v = 0}, {.v = 1}, {.v = 2}};
    for (int i = 0; i < 3; i++)
        sf_list_push_head(&l, &it[i].link);
    sf_list_move_to_head(&l, &it[0].link); /* the tail */
    expect(&l, (const int[]){0, 2, 1}, 3);
    sf_list_move_to_head(&l, &it[0].link); /* already first */
    expect(&l, (const int[]){0, 2, 1}, 3);
}

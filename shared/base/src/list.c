/* list: intrusive doubly linked list; see sf/list.h. */
#include "sf/list.h"

#include <stddef.h>

void sf_list_push_head(sf_list *l, sf_list_node *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    l->head = n;
    if (l->tail == NULL)
        l->tail = n;
}

void sf_list_unlink(sf_list *l, sf_list_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

void sf_list_move_to_head(sf_list *l, sf_list_node *n)
{
    sf_list_unlink(l, n);
    sf_list_push_head(l, n);
}

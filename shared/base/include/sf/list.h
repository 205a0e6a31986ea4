/*
 * list: an intrusive doubly linked list (after Redis's adlist), for the
 * LRU orders of the worker's caches. A node is embedded in the caller's
 * entry; when it is the entry's first member, a node pointer converts to an
 * entry pointer with a plain cast.
 *
 * Thread safety: none; the owner's lock guards the list.
 * Ownership: the list owns nothing; entries are the caller's.
 */
#ifndef SF_LIST_H
#define SF_LIST_H

typedef struct sf_list_node {
    struct sf_list_node *prev, *next;
} sf_list_node;

typedef struct sf_list {
    sf_list_node *head, *tail; /* both NULL when empty */
} sf_list;

/* Put n (not in any list) first. */
void sf_list_push_head(sf_list *l, sf_list_node *n);
/* Take n out of l; its links are cleared. */
void sf_list_unlink(sf_list *l, sf_list_node *n);
/* Move n (in l) to the head: mark it most recently used. */
void sf_list_move_to_head(sf_list *l, sf_list_node *n);

#endif

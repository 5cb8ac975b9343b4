"""A condition's views (nlp/views.py): the customer-voice texts derived from its words."""

from __future__ import annotations

from baton_server.nlp.views import MAX_VIEWS, alternatives, complaints, views


def test_alternatives_split_a_word_and_a_clause() -> None:
    assert alternatives("I want to know where my order or parcel is") == [
        "I want to know where my order is",
        "I want to know where my parcel is",
    ]
    # A verb after `or`: two clauses, the second with the first one's subject.
    assert alternatives("my delivery is late or has not arrived") == [
        "my delivery is late",
        "my delivery has not arrived",
    ]
    assert alternatives("I cannot log in or reset my password") == [
        "I cannot log in",
        "I cannot reset my password",
    ]
    assert alternatives("a charge on my bill or an invoice") == [
        "a charge on my bill",
        "a charge on my invoice",
    ]
    assert alternatives("I want a refund") == []


def test_views_put_the_condition_in_customer_words() -> None:
    found = views("The customer asks where their order or parcel is")
    assert found[:2] == (
        "The customer asks where their order or parcel is",
        "I want to know where my order or parcel is",
    )
    assert {"where is my order?", "where is my parcel?", "where is my package?"} <= set(found)
    handoff = views("The customer asks for a human")
    assert {"I want a human", "can I get a person", "I need a representative"} <= set(handoff)
    login = views("The customer cannot sign in to their account")
    assert {"I can't log in to my account", "I am unable to sign in to my account"} <= set(login)
    assert all(" or " not in f" {v} " for v in login)
    assert len(views("The customer wants to speak to a person")) == MAX_VIEWS  # capped


def test_a_condition_not_about_the_customer_is_its_own_only_view() -> None:
    assert views("Always greet politely") == ("Always greet politely",)
    assert complaints("Always greet politely") == ()


def test_complaints_state_what_a_remedy_is_for() -> None:
    assert complaints("The customer wants a refund for a missing or wrong item") == (
        "my item is missing",
        "the item was missing",
        "I got a missing item",
        "my item is wrong",
        "the item was wrong",
        "I got a wrong item",
    )
    assert complaints("The customer asks about a refund") == ()

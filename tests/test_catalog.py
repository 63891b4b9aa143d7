from __future__ import annotations

from avatarflow import catalog


def test_characters_and_styles() -> None:
    assert catalog.characters() == ("harry", "jeff", "lisa", "lori", "max", "meg")
    assert catalog.styles("harry") == ("business", "casual", "youthful")
    assert catalog.styles("Lisa") == (
        "casual-sitting",
        "graceful-sitting",
        "graceful-standing",
        "technical-sitting",
        "technical-standing",
    )
    assert catalog.styles("nobody") == ()


def test_is_standard_character_case_insensitive() -> None:
    assert catalog.is_standard_character("lisa")
    assert catalog.is_standard_character("MEG")
    assert not catalog.is_standard_character("anika")  # a photo avatar, not a video one


def test_gestures() -> None:
    graceful = catalog.gestures("lisa", "graceful-sitting")
    assert graceful is not None
    assert "wave-left-1" in graceful
    assert "thumbsup-left" in graceful
    casual = catalog.gestures("Lisa", "Casual-Sitting")
    assert casual is not None and "show-front-9" in casual
    assert catalog.gestures("harry", "business") == (
        "123",
        "calm-down",
        "come-on",
        "five-star-reviews",
        "good",
        "hello",
        "introduce",
        "invite",
        "thanks",
        "welcome",
    )
    max_business = catalog.gestures("max", "business")
    assert max_business is not None and "good-01" in max_business
    assert "good-1" not in max_business


def test_styles_without_gestures() -> None:
    assert catalog.gestures("lisa", "graceful-standing") == ()
    assert catalog.gestures("lisa", "technical-standing") == ()


def test_unknown_pair_is_none() -> None:
    assert catalog.gestures("lisa", "business") is None
    assert catalog.gestures("nobody", "casual") is None


def test_no_duplicate_gestures() -> None:
    for character in catalog.characters():
        for style in catalog.styles(character):
            names = catalog.gestures(character, style)
            assert names is not None
            assert len(set(names)) == len(names), (character, style)


def test_photo_avatars() -> None:
    assert catalog.is_photo_avatar("anika")
    assert catalog.is_photo_avatar("Matteo")
    assert catalog.is_photo_avatar("ADRIAN")
    assert not catalog.is_photo_avatar("lisa")
    assert len(catalog.photo_avatars()) == 30


def test_closest() -> None:
    assert catalog.closest("lsia", catalog.characters()) == "lisa"
    assert catalog.closest("wave-left1", ["wave-left-1", "show-left-1"]) == "wave-left-1"
    assert catalog.closest("Graceful-Siting", ["graceful-sitting"]) == "graceful-sitting"
    assert catalog.closest("zzzz", catalog.characters()) is None


def test_source_names_the_document() -> None:
    assert "standard-avatars.md" in catalog.source()

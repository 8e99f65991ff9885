import pytest

from labeler.ingest.rules import RulesError, load_rules, parse_rules, tokenize

RULES = load_rules()


@pytest.mark.parametrize(
    "name, state, label",
    [
        ("angry-man.jpg", "labeled", "angry"),
        ("UPSET_customer.png", "labeled", "angry"),
        ("unhappy-child.jpg", "labeled", "angry"),  # unhappy is its own word, never "happy"
        ("happy-child.jpg", "labeled", "happy"),
        ("unhappy-happy.jpg", "ambiguous", None),  # two classes
        ("shocked woman (1).jpg", "labeled", "surprise"),
        ("frightened.jpg", "labeled", "surprise"),
        ("amazed-boy-260nw-1234.jpg", "labeled", "surprise"),
        ("smiling_girl.webp", "labeled", "happy"),
        ("baby-cry.jpg", "labeled", "sad"),
        ("crying.jpg", "labeled", "sad"),
        ("neutral face.png", "labeled", "neutral"),
        ("blank expression 2.png", "labeled", "neutral"),  # a two-word phrase
        ("furious.jpg", "labeled", "angry"),
        ("scared_cat.jpg", "labeled", "fear"),
        ("disgusted-woman.jpg", "labeled", "disgust"),
        ("sad-man-happy-face-mask-123.jpg", "ambiguous", None),
        ("not-happy.jpg", "none", None),  # negated
        ("isn't happy.jpg", "none", None),
        ("not-happy-but-angry.jpg", "labeled", "angry"),  # negation only cancels the next word
        ("happyface.jpg", "none", None),  # not a whole token
        ("HappyFace.jpg", "labeled", "happy"),  # camelCase splits
        ("happy2.jpg", "labeled", "happy"),  # digits split
        ("images (3).jpg", "none", None),
        ("-leading-dash-sad.jpg", "labeled", "sad"),
        ("笑顔_laughing.jpg", "labeled", "happy"),  # non-Latin characters around a keyword
        ("悲しい顔.jpg", "none", None),  # non-Latin only: no rule, no crash
        ("Überraschung-shocked.JPG", "labeled", "surprise"),
        ("madrid-street.jpg", "none", None),  # "mad" only as a whole token
        ("sadness and sad.jpg", "labeled", "sad"),  # two words, one class
    ],
)
def test_match_table(name, state, label):
    m = RULES.match(name)
    assert (m.state, m.label) == (state, label), m


def test_folders_off_by_default_and_optional():
    assert RULES.match("happy/img001.jpg").state == "none"
    m = RULES.match("happy/img001.jpg", include_folders=True)
    assert (m.state, m.label) == ("labeled", "happy")
    assert RULES.match("happy/angry-man.jpg", include_folders=True).state == "ambiguous"


def test_tokenize():
    assert tokenize("Sad-Man_HappyFace (1).JPG") == ["sad", "man", "happy", "face", "jpg"]
    assert tokenize("don't") == ["dont"]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("angry: angry, mad\nhapy: glad\n", "line 2: unknown class 'hapy'"),
        ("angry: angry\nhappy angry\n", "line 2: expected `class: word"),
        ("angry: angry, mad\nhappy: glad, mad\n", "line 2: word 'mad' is listed for 'happy' and already for 'angry' on line 1"),
        ("angry: angry,, mad\n", "line 1: empty word"),
        ("angry:\n", "line 1: class 'angry' has no words"),
        ("angry: r2d2\n", "line 1: 'r2d2' is not a word"),
        ("# only a comment\n", "no rules found"),
        ("angry: a\nangry: b\n", "line 2: class 'angry' appears on two lines"),
    ],
)
def test_bad_rules_file_names_file_line_and_problem(text, needle):
    with pytest.raises(RulesError) as e:
        parse_rules(text, "my_rules.txt")
    assert "my_rules.txt" in str(e.value)
    assert needle in str(e.value)


def test_user_rules_file(tmp_path):
    p = tmp_path / "rules.txt"
    p.write_text("happy: beaming\nsad: glum\nnegate: not\n", encoding="utf-8")
    rs = load_rules(p)
    assert RULES.match("beaming.jpg").state == "none"
    assert rs.match("beaming.jpg").label == "happy"
    assert rs.match("happy.jpg").state == "none"  # the user's file replaces the shipped one
    with pytest.raises(RulesError, match="rules file not found"):
        load_rules(tmp_path / "missing.txt")

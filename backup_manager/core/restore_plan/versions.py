"""Version comparison for app checks: dotted releases with pre-release tails (15.0.0-beta.1)."""

import re

_PRE_RELEASE_RANKS = {
	"dev": 0,
	"develop": 0,
	"alpha": 1,
	"a": 1,
	"beta": 2,
	"b": 2,
	"rc": 3,
	"c": 3,
	"pre": 3,
}
_UNKNOWN_PRE_RELEASE_RANK = 4
_VERSION_PATTERN = re.compile(r"\s*v?([0-9]+(?:\.[0-9]+)*)(.*)", re.IGNORECASE | re.ASCII | re.DOTALL)


def parse_version(text: str) -> tuple[tuple[int, ...], tuple | None] | None:
	"""Split a dotted version into (release numbers, pre-release key or None); None if unreadable."""
	match = _VERSION_PATTERN.fullmatch(text or "")
	if not match:
		return None
	release = tuple(int(part) for part in match.group(1).split("."))
	tail = match.group(2).split("+", 1)[0].strip().lstrip(".-_")
	if not tail:
		return release, None
	tokens = re.findall(r"\d+|[A-Za-z]+", tail)
	if not tokens:
		return None
	return release, tuple(_pre_release_key(token) for token in tokens)


def _pre_release_key(token: str) -> tuple[int, int, str]:
	if token.isdigit():
		return (0, int(token), "")
	word = token.lower()
	rank = _PRE_RELEASE_RANKS.get(word, _UNKNOWN_PRE_RELEASE_RANK)
	# Spellings of one stage (b, beta) compare equal; unknown words compare by spelling.
	return (1, rank, "" if rank != _UNKNOWN_PRE_RELEASE_RANK else word)


def compare_versions(left: str, right: str) -> int | None:
	"""Return -1, 0 or 1 as `left` is older, equal or newer than `right`; None if either is unreadable."""
	parsed_left, parsed_right = parse_version(left), parse_version(right)
	if parsed_left is None or parsed_right is None:
		return None
	(release_left, pre_left), (release_right, pre_right) = parsed_left, parsed_right
	width = max(len(release_left), len(release_right))
	release_left = release_left + (0,) * (width - len(release_left))
	release_right = release_right + (0,) * (width - len(release_right))
	if release_left != release_right:
		return -1 if release_left < release_right else 1
	# A pre-release (15.0.0-dev, 16.0.0-beta.1) comes before the release itself.
	if pre_left == pre_right:
		return 0
	if pre_left is None:
		return 1
	if pre_right is None:
		return -1
	return -1 if pre_left < pre_right else 1


def get_major_version(version: str) -> int | None:
	"""The first release number of a version (15 for 15.44.2); None if unreadable."""
	parsed = parse_version(version)
	return parsed[0][0] if parsed else None

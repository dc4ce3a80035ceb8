"""The dump's database password goes through the environment, unless an option file would override it."""

import os
import shutil
import tempfile
import unittest
from unittest import mock

from backup_manager.core import dump_password
from backup_manager.core.dump_password import option_files_set_password, password_in_environment


class Generator:
	"""The two attributes of Frappe's BackupGenerator that the swap reads and writes."""

	def __init__(self, password="s3cret-db-password", db_type="mariadb"):
		self.password = password
		self.db_type = db_type


def with_home(test: unittest.TestCase, option_file: str | None) -> None:
	"""Point HOME (where mariadb-dump reads ~/.my.cnf) at a new folder, with `option_file` as .my.cnf."""
	home = tempfile.mkdtemp(prefix="bm-home-")
	test.addCleanup(shutil.rmtree, home, True)
	if option_file is not None:
		with open(os.path.join(home, ".my.cnf"), "w") as handle:
			handle.write(option_file)
	patcher = mock.patch.dict(os.environ, {"HOME": home})
	patcher.start()
	test.addCleanup(patcher.stop)


@unittest.skipUnless(shutil.which("mariadb-dump") or shutil.which("mysqldump"), "needs mariadb-dump")
class TestOptionFiles(unittest.TestCase):
	"""Real mariadb-dump --print-defaults over a real option file in HOME."""

	def test_no_password_in_option_files(self):
		with_home(self, "[client]\nhost=127.0.0.1\n")
		self.assertFalse(option_files_set_password())

	def test_a_client_password_is_found(self):
		for option_file in ("[client]\npassword=other\n", "[mysqldump]\npassword = other\n"):
			with self.subTest(option_file=option_file):
				with_home(self, option_file)
				self.assertTrue(option_files_set_password())


class TestPasswordInEnvironment(unittest.TestCase):
	def setUp(self):
		patcher = mock.patch.dict(os.environ)
		patcher.start()
		self.addCleanup(patcher.stop)
		os.environ.pop("MYSQL_PWD", None)
		os.environ.pop("PGPASSWORD", None)
		self.warnings = []

	def no_option_file_password(self):
		patcher = mock.patch.object(dump_password, "option_files_set_password", return_value=False)
		patcher.start()
		self.addCleanup(patcher.stop)

	def test_mariadb_password_moves_to_mysql_pwd_for_the_block_only(self):
		self.no_option_file_password()
		generator = Generator()
		with password_in_environment(generator, warn=self.warnings.append) as moved:
			self.assertTrue(moved)
			self.assertEqual(generator.password, "", "Frappe leaves an empty password off the command")
			self.assertEqual(os.environ["MYSQL_PWD"], "s3cret-db-password")
		self.assertEqual(generator.password, "s3cret-db-password")
		self.assertNotIn("MYSQL_PWD", os.environ)
		self.assertEqual(self.warnings, [])

	def test_a_previous_value_is_put_back_even_after_a_failure(self):
		self.no_option_file_password()
		os.environ["MYSQL_PWD"] = "operator's own"
		generator = Generator()
		with self.assertRaises(RuntimeError), password_in_environment(generator):
			raise RuntimeError("dump failed")
		self.assertEqual(os.environ["MYSQL_PWD"], "operator's own")
		self.assertEqual(generator.password, "s3cret-db-password")

	def test_postgres_uses_pgpassword(self):
		generator = Generator(db_type="postgres")
		with password_in_environment(generator) as moved:
			self.assertTrue(moved)
			self.assertEqual(os.environ["PGPASSWORD"], "s3cret-db-password")
		self.assertNotIn("PGPASSWORD", os.environ)

	def test_an_option_file_password_keeps_frappes_way_and_warns(self):
		patcher = mock.patch.object(dump_password, "option_files_set_password", return_value=True)
		patcher.start()
		self.addCleanup(patcher.stop)
		generator = Generator()
		with password_in_environment(generator, warn=self.warnings.append) as moved:
			self.assertFalse(moved)
			self.assertEqual(generator.password, "s3cret-db-password")
			self.assertNotIn("MYSQL_PWD", os.environ)
		self.assertEqual(len(self.warnings), 1)
		self.assertIn("~/.my.cnf", self.warnings[0])
		self.assertNotIn("s3cret-db-password", self.warnings[0])

	def test_nothing_to_move(self):
		for generator in (Generator(password=""), Generator(password=None), Generator(db_type="sqlite")):
			with self.subTest(generator=vars(generator)), password_in_environment(generator) as moved:
				self.assertFalse(moved)
				self.assertNotIn("MYSQL_PWD", os.environ)


if __name__ == "__main__":
	unittest.main()

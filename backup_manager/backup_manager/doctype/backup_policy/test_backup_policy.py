# Copyright (c) 2026, Backup Manager Contributors
# License: MIT. See license.txt

import frappe

from backup_manager.backup_manager.doctype.backup_policy.backup_policy import (
	InvalidBackupPolicy,
)
from backup_manager.tests.utils import (
	TEST_POLICY_PREFIX,
	FrappeTestCase,
	delete_test_policies,
	make_user,
)


def policy_doc(**values):
	return frappe.get_doc(
		{
			"doctype": "Backup Policy",
			"policy_name": TEST_POLICY_PREFIX + "validation",
			"frequency": "Daily",
			"keep_last": 3,
			**values,
		}
	)


class TestBackupPolicyValidation(FrappeTestCase):
	def tearDown(self):
		frappe.set_user("Administrator")
		frappe.db.rollback()

	def assert_refused(self, expected_message: str, **values):
		with self.assertRaises(InvalidBackupPolicy) as caught:
			policy_doc(**values).insert()
		self.assertIn(expected_message, str(caught.exception))

	def test_bad_cron_expression_is_refused_with_an_example(self):
		self.assert_refused(
			"Cron Expression '61 * * * *' is not valid. Use five fields: minute hour day-of-month month "
			"day-of-week, e.g. 30 2 * * * for 02:30 every day.",
			frequency="Cron",
			cron_expression="61 * * * *",
		)

	def test_negative_count_is_refused(self):
		self.assert_refused("Keep Daily cannot be negative. Use 0 to turn it off.", keep_daily=-2)

	def test_retention_that_keeps_nothing_is_refused(self):
		self.assert_refused(
			"This retention keeps no backups. Set Keep Last, or at least one of Keep Hourly, Keep Daily, "
			"Keep Weekly, Keep Monthly or Keep Yearly, above 0.",
			keep_last=0,
			keep_daily=0,
			keep_weekly=0,
			keep_monthly=0,
			keep_yearly=0,
			keep_hourly=0,
		)

	def test_unknown_doctype_is_refused(self):
		# Frappe's link validation answers first, naming the row, the field and the value.
		with self.assertRaises(frappe.LinkValidationError) as caught:
			policy_doc(partial_backup=1, include_doctypes=[{"document_type": "No Such DocType"}]).insert()
		self.assertIn("Could not find Row #1: DocType: No Such DocType", str(caught.exception))
		# Without link validation (API imports), the policy's own check names field and fix.
		policy = policy_doc(partial_backup=1, exclude_doctypes=[{"document_type": "No Such DocType"}])
		policy.flags.ignore_links = True
		with self.assertRaises(InvalidBackupPolicy) as caught:
			policy.insert()
		self.assertIn(
			"Exclude DocTypes: unknown DocType <strong>No Such DocType</strong>. Remove it or correct its name.",
			str(caught.exception),
		)

	def test_bad_email_is_refused(self):
		self.assert_refused(
			"Recipients: <strong>not-an-email</strong> is not a valid email address. Fix or remove it.",
			recipients="ops@example.com\nnot-an-email",
		)

	def test_negative_alert_window_is_refused(self):
		self.assert_refused("cannot be negative. Use 0 to turn the alert off.", alert_after_hours=-1)

	def test_valid_policy_gets_its_next_run_time(self):
		policy = policy_doc(frequency="Cron", cron_expression="15 3 * * *")
		policy.insert()
		next_run = frappe.utils.get_datetime(policy.next_run_at)
		self.assertEqual((next_run.hour, next_run.minute), (3, 15))
		self.assertGreater(next_run, frappe.utils.now_datetime())


class TestBackupPolicyPermissions(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		make_user("bm-plain-user@example.com", ["Blogger"])

	def tearDown(self):
		frappe.set_user("Administrator")
		delete_test_policies()

	def test_non_system_manager_is_denied_policies_logs_and_the_run_method(self):
		from backup_manager.tests.utils import make_policy

		policy = make_policy("permissions")
		frappe.set_user("bm-plain-user@example.com")
		self.assertFalse(frappe.has_permission("Backup Policy", "read"))
		self.assertFalse(frappe.has_permission("Backup Log", "read"))
		from frappe.client import get as client_get

		for doctype in ("Backup Policy", "Backup Log"):
			with self.subTest(doctype=doctype), self.assertRaises(frappe.PermissionError):
				frappe.get_list(doctype)
		with self.assertRaises(frappe.PermissionError):
			client_get("Backup Policy", policy.name)
		from backup_manager import api

		for method, kwargs in (
			(api.backup_now, {"policy": policy.name}),
			(api.preview_retention, {"policy": policy.name}),
		):
			with self.subTest(method=method.__name__):
				# Desk reaches it as a logged-in user (whitelisted, never for Guest), and it refuses.
				self.assertIn(method, frappe.whitelisted)
				self.assertNotIn(method, frappe.guest_methods)
				with self.assertRaises(frappe.PermissionError):
					method(**kwargs)
		self.assertEqual(
			frappe.db.count("Backup Log", {"policy": policy.name}), 0, "a refused Backup Now queued a run"
		)

	def test_policies_and_destinations_cannot_be_shared_even_by_a_system_manager(self):
		from frappe.share import add as share_add

		from backup_manager.tests.utils import make_policy, make_user

		policy = make_policy("no-share")
		make_user("bm-sharing-manager@example.com", ["System Manager"])
		frappe.set_user("bm-sharing-manager@example.com")
		for doctype in ("Backup Policy", "Backup Destination"):
			with self.subTest(doctype=doctype):
				self.assertFalse(frappe.has_permission(doctype, "share"))
		with self.assertRaises(frappe.PermissionError):
			share_add("Backup Policy", policy.name, "bm-plain-user@example.com", read=1)

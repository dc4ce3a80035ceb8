from setuptools import find_packages, setup

with open("requirements.txt") as requirements_file:
	install_requires = [
		line.strip() for line in requirements_file if line.strip() and not line.startswith("#")
	]

# get version from __version__ variable in backup_manager/__init__.py
from backup_manager import __version__ as version  # noqa: E402

setup(
	name="backup_manager",
	version=version,
	description="Production-grade backups for Frappe and ERPNext sites",
	author="Backup Manager Contributors",
	license="MIT",
	python_requires=">=3.10",
	packages=find_packages(exclude=("tests", "tests.*", "benchmarks")),
	zip_safe=False,
	include_package_data=True,
	install_requires=install_requires,
)

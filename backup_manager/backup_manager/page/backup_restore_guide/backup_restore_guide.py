# The page's data comes from backup_manager.api.get_restore_guide (permission check first).

"""lnlbench's built-in method plugins, registered through the `lnlbench` entry-point group like any third party's."""

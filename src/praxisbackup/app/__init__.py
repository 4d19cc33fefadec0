"""The application layer: what a user (through the CLI or the web page) asks praxisbackup to
do, each as one function or class - the nightly job, restore-practice, the drill, the emergency
sheet, the daily check. Interfaces call these and only render their results."""
